"""Leases from Python: claim_stage / Lease / run_stage(lease=...) / leases(), fencing with
LeaseLostError, claims released by `with`, release() and close(), fork leaving the parent's
claim alone, real worker processes running each stage once; and the constructor's key_file and
reconnect_timeout options."""

import os
import secrets
import subprocess
import sys
import time

import pytest

import checkpoint
from checkpoint import CheckpointManager, LeaseOptions

from conftest import TIMEOUT


def wait_until(condition, what, seconds=60):
    """Polls `condition` (bounded) instead of sleeping and hoping."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_a_claim_is_exclusive_until_released_and_tokens_grow(directory):
    with CheckpointManager(directory) as first, CheckpointManager(directory) as second:
        lease = first.claim_stage("train")
        assert isinstance(lease, checkpoint.Lease)
        assert (lease.stage, lease.token, lease.lost) == ("train", 1, False)
        assert repr(lease) == "<checkpoint.Lease stage='train' token=1>"
        with pytest.raises(checkpoint.BusyError):
            second.claim_stage("train", wait=0)
        [held] = second.leases()
        assert (held.stage, held.token, held.pid, held.live) == ("train", 1, os.getpid(), True)
        assert held.run_id == first.run_id
        lease.release()
        assert second.leases() == []
        taken = second.claim_stage("train", wait=0)
        assert taken.token == 2
        taken.release()


def test_a_completed_stage_gives_no_lease(manager):
    manager.save_checkpoint("done")
    assert manager.claim_stage("done") is None


def test_rows_written_under_a_claim_carry_its_token(manager):
    with manager.claim_stage("s") as lease:
        manager.begin_stage("s")
        manager.save_checkpoint("s")
    assert manager.leases() == []  # released on leaving the block
    started, completed = manager.history(stage="s")
    assert started.lease_token == completed.lease_token == lease.token
    manager.save_checkpoint("unleased")
    assert manager.latest("unleased").lease_token is None


def test_a_lapsed_claim_is_fenced_off(directory):
    with CheckpointManager(directory) as zombie, CheckpointManager(directory) as worker:
        stale = zombie.claim_stage("s", ttl=0.05, heartbeat=False)
        zombie.begin_stage("s")
        wait_until(lambda: not any(lease.live for lease in worker.leases()), "the claim to lapse")
        with worker.claim_stage("s", wait=0) as fresh:
            assert fresh.token == stale.token + 1
            worker.save_checkpoint("s")
        rows = len(worker.history(stage="s"))
        with pytest.raises(checkpoint.LeaseLostError) as error:
            zombie.save_checkpoint("s", output=b"late")
        assert error.value.code == "lease_lost"
        with pytest.raises(checkpoint.LeaseLostError):
            stale.renew()
        assert stale.lost
        assert len(worker.history(stage="s")) == rows  # the fenced save wrote nothing


def test_closing_the_manager_releases_its_claims(directory):
    owner = CheckpointManager(directory)
    lease = owner.claim_stage("s")
    owner.close()
    assert lease.lost
    with pytest.raises(checkpoint.ClosedError):
        lease.renew()
    with CheckpointManager(directory) as other:
        assert other.claim_stage("s", wait=0).token == 2  # free at once, not after the ttl
    del lease  # after its manager closed: nothing to release


def test_run_stage_with_a_lease(manager):
    calls = []
    assert manager.run_stage("a", lambda: calls.append("a"), lease=True) is True
    assert manager.run_stage("a", lambda: calls.append("again"), lease=True) is False
    assert calls == ["a"]
    assert manager.latest("a").lease_token == 1
    assert manager.leases() == []

    def broken():
        raise ValueError("bad row")

    with pytest.raises(ValueError, match="bad row"):
        manager.run_stage("b", broken, lease=LeaseOptions(ttl=5, wait=0))
    failed = manager.latest("b")
    assert (failed.status, failed.message, failed.lease_token) == ("failed", "ValueError: bad row", 1)
    assert manager.leases() == []  # released after the failure too

    with pytest.raises(checkpoint.InvalidArgumentError, match="no fingerprint"):
        manager.run_stage("c", lambda: None, fingerprint="f", lease=True)
    with pytest.raises(TypeError, match="LeaseOptions"):
        manager.run_stage("c", lambda: None, lease="yes")


def test_lease_options_and_bad_values(manager):
    options = LeaseOptions(ttl=2.5, wait=0, heartbeat=False)
    assert (options.ttl, options.wait, options.heartbeat) == (2.5, 0.0, False)
    assert LeaseOptions().wait is None
    assert repr(LeaseOptions()) == "LeaseOptions(ttl=30.0, wait=None, heartbeat=True)"
    with pytest.raises(checkpoint.InvalidArgumentError):
        manager.claim_stage("s", ttl=0.001)  # below the 10 ms minimum
    with pytest.raises(checkpoint.InvalidArgumentError):
        manager.claim_stage("s", wait=-1)
    with pytest.raises(TypeError):
        manager.claim_stage("s", ttl="long")
    assert manager.leases() == []  # nothing was claimed


def test_a_forked_child_leaves_the_parents_claim_alone(manager):
    lease = manager.claim_stage("s")
    pid = os.fork()
    if pid == 0:  # the child: dropping the inherited Lease must not release the claim
        code = 0
        try:
            del lease
            import gc
            gc.collect()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    [held] = manager.leases()
    assert held.live and held.token == lease.token
    lease.renew()  # still ours
    lease.release()


WORKER = r"""
import sys
from checkpoint import CheckpointManager, LeaseOptions
directory, log, stages = sys.argv[1], sys.argv[2], int(sys.argv[3])
with CheckpointManager(directory) as manager:
    for i in range(stages):
        stage = f"stage-{i:03d}"
        def work():
            with open(log, "a") as out:
                out.write(stage + "\n")
        manager.run_stage(stage, work, lease=LeaseOptions(ttl=30))
"""


def test_worker_processes_run_each_stage_once(tmp_path):
    directory, log, stages = tmp_path / "checkpoints", tmp_path / "work.log", 40
    CheckpointManager(directory).close()  # created before the workers race
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, directory, log, str(stages)])
               for _ in range(4)]
    for worker in workers:
        assert worker.wait(timeout=TIMEOUT) == 0
    lines = log.read_text().splitlines()
    assert sorted(lines) == [f"stage-{i:03d}" for i in range(stages)]  # each exactly once
    with CheckpointManager(directory, read_only=True) as reader:
        completed = reader.history(status="completed")
        assert len(completed) == stages
        assert all(row.lease_token is not None for row in completed)


def key_file(path):
    path.write_bytes(secrets.token_bytes(32))
    path.chmod(0o600)
    return path


def test_key_file_encrypts_and_is_required(tmp_path):
    directory = tmp_path / "checkpoints"
    key, other = key_file(tmp_path / "key"), key_file(tmp_path / "other")
    marker = b"marker-" + secrets.token_hex(8).encode()
    with CheckpointManager(directory, key_file=key) as manager:
        manager.save_checkpoint("s", output=marker, metadata={"note": marker.decode()})
    with CheckpointManager(directory, key_file=str(key)) as manager:
        assert manager.load_output("s") == marker
        assert manager.latest("s").metadata == {"note": marker.decode()}
    for file in directory.iterdir():
        if file.is_file():
            assert marker not in file.read_bytes(), file
    with CheckpointManager(directory) as manager:
        with pytest.raises(checkpoint.KeyRequiredError):
            manager.load_output("s")
    with pytest.raises(checkpoint.WrongKeyError):
        CheckpointManager(directory, key_file=other)
    key.chmod(0o644)
    with pytest.raises(checkpoint.UnsafeError):
        CheckpointManager(directory, key_file=key)


def test_reconnect_timeout_is_checked(directory):
    with CheckpointManager(directory, reconnect_timeout=0) as manager:
        manager.save_checkpoint("s")  # accepted (it matters on PostgreSQL only)
    with pytest.raises(checkpoint.InvalidArgumentError, match="reconnect_timeout"):
        CheckpointManager(directory, reconnect_timeout=-1)
    with pytest.raises(TypeError):
        CheckpointManager(directory, reconnect_timeout="soon")
