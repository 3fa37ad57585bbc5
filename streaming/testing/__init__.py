"""Testing support shipped for users: pytest fixtures for a real local stack.

The pytest plugin (:mod:`streaming.testing.plugin`) is registered through the
``pytest11`` entry point; its fixtures start nothing until a test asks for them.
"""

from streaming.testing.stack import StackEndpoints, ensure_stack

__all__ = ["StackEndpoints", "ensure_stack"]
