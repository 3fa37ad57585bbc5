"""Operator views over a running stack: what ``streaming top`` samples and computes.

:mod:`.model` is pure (rates, lag, rebalances from samples); :mod:`.top` does the looking
(Kafka through the transport, the registry over HTTP, the audit chain through a source
the caller passes in, so this package never imports ``connectors``).
"""
