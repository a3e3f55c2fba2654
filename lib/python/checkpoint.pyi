"""checkpoint: durable, auditable pipeline checkpoints in SQLite (type stubs).

    from checkpoint import CheckpointManager
    manager = CheckpointManager()            # ./checkpoints/checkpoints.db
    if not manager.has_checkpoint("data_ingestion"):
        ingest()
        manager.save_checkpoint("data_ingestion")   # durable when it returns
"""

import datetime
import os
from types import TracebackType
from typing import Any, Callable, Iterable, Literal, Optional, TypeVar, Union

_F = TypeVar("_F", bound=Callable[..., Any])
_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
_Seconds = Union[int, float, datetime.timedelta]
_Bytes = Union[bytes, bytearray, memoryview]
_Json = Union[None, bool, int, float, str, list["_Json"], tuple["_Json", ...], dict[str, "_Json"]]
_Status = Literal["started", "completed", "failed", "cleared", "incomplete"]

__version__: str
MAX_NAME_BYTES: int

def schema_version() -> int: ...

# ---- Errors: every failure raises Error; `code` is a stable lower-case string. ----

class Error(Exception):
    code: str
class InvalidArgumentError(Error, ValueError): ...  # "invalid_argument"; nothing was written
class NotFoundError(Error): ...  # "not_found"
class DatabaseError(Error): ...  # base of the four below
class NotADatabaseError(DatabaseError): ...  # "not_a_database"
class CorruptError(DatabaseError): ...  # "corrupt"
class SchemaTooNewError(DatabaseError): ...  # "schema_too_new"
class SchemaTooOldError(DatabaseError): ...  # "schema_too_old"
class IoError(Error): ...  # "io"
class DiskFullError(IoError): ...  # "disk_full"
class BusyError(Error): ...  # "busy"
class ReadOnlyError(Error): ...  # "read_only"
class InternalError(Error): ...  # "internal"
class UnsafeError(Error): ...  # "unsafe"
class OutputDamagedError(Error): ...  # "output_damaged"
class UnavailableError(Error): ...  # "unavailable": PostgreSQL server unreachable
class LeaseLostError(Error): ...  # "lease_lost"
class KeyRequiredError(Error): ...  # "key_required"
class WrongKeyError(Error): ...  # "wrong_key"
class ClosedError(Error): ...  # "closed": the manager was closed
class ForkedError(Error): ...  # "forked": the manager belongs to the parent process

# ---- Records (read-only attributes). ----

class InputVersion:
    @property
    def stage(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def id(self) -> int: ...

class StoredOutput:
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def in_database(self) -> bool: ...

class Checkpoint:
    @property
    def id(self) -> int: ...
    @property
    def pipeline(self) -> str: ...
    @property
    def stage(self) -> str: ...
    @property
    def status(self) -> _Status: ...
    @property
    def version(self) -> int: ...
    @property
    def timestamp(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def duration(self) -> Optional[datetime.timedelta]: ...
    @property
    def message(self) -> str: ...
    @property
    def metadata(self) -> dict[str, Any]: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def inputs(self) -> list[InputVersion]: ...
    @property
    def output(self) -> Optional[StoredOutput]: ...
    @property
    def stale(self) -> bool: ...
    @property
    def stale_reason(self) -> str: ...

class Run:
    @property
    def run_id(self) -> str: ...
    @property
    def pipeline(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def pid(self) -> int: ...
    @property
    def user(self) -> str: ...
    @property
    def started_at(self) -> str: ...
    @property
    def ended_at(self) -> Optional[str]: ...
    @property
    def outcome(self) -> Literal["running", "finished", "failed", "died"]: ...
    @property
    def stages_completed(self) -> int: ...
    @property
    def stages_failed(self) -> int: ...

class PruneResult:
    @property
    def rows_deleted(self) -> int: ...
    @property
    def runs_deleted(self) -> int: ...
    @property
    def files_deleted(self) -> int: ...
    @property
    def bytes_freed(self) -> int: ...

# ---- Fingerprints. ----

class Fingerprint:
    def __init__(self) -> None: ...
    def add(self, part: Union[str, _Bytes]) -> Fingerprint: ...
    def add_file(self, file: _Path) -> Fingerprint: ...
    def str(self) -> str: ...

def fingerprint_of(data: Union[str, _Bytes]) -> str: ...
def fingerprint_of_file(file: _Path) -> Optional[str]: ...

# ---- The manager. ----

class Stage:
    """`with manager.stage(name) as s: if not s.done: ...`, or `@manager.stage(name)`."""

    @property
    def done(self) -> bool: ...
    @property
    def name(self) -> str: ...
    output: Optional[_Bytes]
    metadata: Optional[dict[str, _Json]]
    def __enter__(self) -> Stage: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> bool: ...
    def __call__(self, function: _F) -> _F: ...

class CheckpointManager:
    def __init__(
        self,
        checkpoint_dir: _Path = "checkpoints",
        *,
        pipeline: str = "default",
        durability: Literal["full", "normal"] = "full",
        busy_timeout: _Seconds = 30.0,
        read_only: bool = False,
        database_file: str = "checkpoints.db",
        file_mode: int = 0o600,
        max_inline_output: int = 1572864,
    ) -> None: ...
    # The original class.
    def save_checkpoint(
        self,
        stage_name: str,
        *,
        output: Optional[_Bytes] = None,
        metadata: Optional[dict[str, _Json]] = None,
        fingerprint: Optional[str] = None,
        inputs: Optional[Iterable[str]] = None,
    ) -> None: ...
    def has_checkpoint(self, stage_name: str, fingerprint: Optional[str] = None) -> bool: ...
    def clear_checkpoints(self) -> None: ...
    # The rest of the API.
    def clear_checkpoint(self, stage: str, *, downstream: bool = False) -> list[str]: ...
    def load_output(self, stage: str, version: Optional[int] = None) -> Optional[bytes]: ...
    def begin_stage(self, stage: str) -> None: ...
    def fail_stage(self, stage: str, message: Union[str, _Bytes]) -> None: ...
    def latest(self, stage: str) -> Optional[Checkpoint]: ...
    def stages(self) -> list[Checkpoint]: ...
    def history(
        self,
        *,
        stage: Optional[str] = None,
        run_id: Optional[str] = None,
        status: Optional[_Status] = None,
        since: Union[None, str, datetime.datetime] = None,
        until: Union[None, str, datetime.datetime] = None,
        limit: Optional[int] = None,
        all_pipelines: bool = False,
    ) -> list[Checkpoint]: ...
    def runs(self) -> list[Run]: ...
    def prune(
        self,
        *,
        older_than: Optional[_Seconds] = None,
        keep_last: Optional[int] = None,
        orphan_grace: _Seconds = 3600,
    ) -> PruneResult: ...
    def verify(self) -> list[str]: ...
    def import_checkpoint(self, stage: str, timestamp: str, source: str) -> bool: ...
    def stage(
        self, stage: str, *, fingerprint: Optional[str] = None, inputs: Optional[Iterable[str]] = None
    ) -> Stage: ...
    def run_stage(
        self,
        stage: str,
        fn: Optional[Callable[[], Any]] = None,
        *,
        fingerprint: Optional[str] = None,
        inputs: Optional[Iterable[str]] = None,
    ) -> Union[bool, Stage]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> CheckpointManager: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> bool: ...
    @property
    def checkpoint_dir(self) -> _Path: ...
    @property
    def run_id(self) -> str: ...
    @property
    def pipeline(self) -> str: ...
    @property
    def database_path(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def outputs_directory(self) -> str: ...
