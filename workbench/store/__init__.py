"""Storage: migrations, short-lived connections, batched idempotent writes, spool."""

from workbench.store.batch import Batch, CursorUpdate
from workbench.store.connection import StoreBusyError
from workbench.store.db import BatchRejectedError, SchemaDriftError, Store, WriteOutcome

__all__ = ["BatchRejectedError", "Batch", "CursorUpdate", "SchemaDriftError", "Store", "StoreBusyError", "WriteOutcome"]
