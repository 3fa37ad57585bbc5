"""The pure core: mechanisms every other package shares, with no I/O.

- :mod:`.backoff`: THE backoff (capped exponential, equal jitter) and the one jitter
  rule behind it, also used for the retry topics' delays.
- :mod:`.headers`: every Kafka/HTTP header name the package writes or reads.
- :mod:`.topics`: topic naming (retry, DLQ, parking, changelog) and the names and
  configs of the compacted internal topics.
- :mod:`.clock`: wall-clock epoch milliseconds and the injectable clock type.
- :mod:`.lifecycle`: ``async with`` as start/stop (:class:`~.lifecycle.AsyncService`)
  and cancelling a background task to its end.

These modules import nothing from ``streaming`` except :mod:`streaming.errors`, so any
package (clients, replay, registry, connectors) can depend on them without cycles.
"""
