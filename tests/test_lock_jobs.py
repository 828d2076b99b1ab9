"""A requeued job takes over the lock its earlier incarnation left on another host; nothing else changes."""
import json
import os
from pathlib import Path

import pytest

from common.errors import UserError
from common.processes import process_start_ticks
from runs import run_lock
from runs.run_lock import Holder, ResultPathLock

JOB_VARIABLES = ('SLURM_JOB_ID', 'SLURM_RESTART_COUNT', 'TORCHELASTIC_RUN_ID', 'TORCHELASTIC_RESTART_COUNT')


@pytest.fixture
def job(monkeypatch):
    """Set this process's scheduler variables (none set before, whatever runs the tests)."""
    for name in JOB_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_job(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
    return set_job


def plant_lock(path: Path, **record) -> Path:
    """A lock file as a run on another host would have left it (a dead PID there says nothing here)."""
    path.mkdir(parents=True, exist_ok=True)
    lock = path / '.lock'
    lock.write_text(json.dumps(dict({'host': 'gpu-node-7', 'pid': 4242, 'since': '2024-01-01 00:00:00 +0000',
                                     'command': 'main.py'}, **record)) + '\n')
    return lock


def take(path: Path) -> list:
    """Acquire and release the lock of ``path``; the notes it said."""
    said: list = []
    held = ResultPathLock.acquire(path, ['new'], say=said.append)
    try:
        assert json.loads((path / '.lock').read_text())['pid'] == os.getpid()
    finally:
        held.release()
    return said


def refused(path: Path) -> str:
    with pytest.raises(UserError) as e:
        ResultPathLock.acquire(path, ['new'])
    assert (path / '.lock').exists()
    return str(e.value)


@pytest.mark.parametrize('recorded', [{}, {'slurm_restart_count': 0}, {'slurm_restart_count': None}])
def test_a_requeued_slurm_job_takes_over_its_own_lock_from_another_host(tmp_path, job, recorded):
    job(SLURM_JOB_ID='123456', SLURM_RESTART_COUNT='1')
    plant_lock(tmp_path, slurm_job_id='123456', **recorded)
    said = take(tmp_path)
    assert len(said) == 1 and '\n' not in said[0]
    assert 'pid 4242 on gpu-node-7' in said[0] and 'same job (SLURM job 123456, restart 0 -> 1)' in said[0]
    assert said[0].endswith('taking the lock over')


def test_a_torchelastic_restart_takes_over_its_own_lock_from_another_host(tmp_path, job):
    job(TORCHELASTIC_RUN_ID='r-17', TORCHELASTIC_RESTART_COUNT='1')
    plant_lock(tmp_path, torchelastic_run_id='r-17', torchelastic_restart_count=0)
    said = take(tmp_path)
    assert len(said) == 1 and 'same job (torchelastic run r-17, restart 0 -> 1)' in said[0]


@pytest.mark.parametrize('env, recorded', [
    ({'SLURM_JOB_ID': '123456', 'SLURM_RESTART_COUNT': '1'}, {'slurm_job_id': '999'}),  # another job
    ({'SLURM_JOB_ID': '123456'}, {'slurm_job_id': '123456'}),  # another run in the same allocation
    ({'SLURM_JOB_ID': '123456', 'SLURM_RESTART_COUNT': '2'}, {'slurm_job_id': '123456', 'slurm_restart_count': 2}),
    ({'SLURM_JOB_ID': '123456', 'SLURM_RESTART_COUNT': '1'}, {'slurm_job_id': '123456', 'slurm_restart_count': 3}),
    ({'SLURM_JOB_ID': '123456', 'SLURM_RESTART_COUNT': '1'}, {}),  # a record of before job identities
    ({}, {'slurm_job_id': '123456'}),
    ({}, {}),
    ({'TORCHELASTIC_RUN_ID': 'r-17'}, {'torchelastic_run_id': 'r-18'}),
    ({'TORCHELASTIC_RUN_ID': 'none'}, {'torchelastic_run_id': 'none'}),  # torchrun's id when none is given
    ({'TORCHELASTIC_RUN_ID': 'r-17'}, {'torchelastic_run_id': 'r-17'}),  # the same command started twice
    ({'TORCHELASTIC_RUN_ID': 'r-17', 'TORCHELASTIC_RESTART_COUNT': '1'},
     {'torchelastic_run_id': 'r-17', 'torchelastic_restart_count': 1}),
])
def test_another_jobs_lock_from_another_host_is_refused_as_before(tmp_path, job, env, recorded):
    job(**env)
    lock = plant_lock(tmp_path, **recorded)
    message = refused(tmp_path)
    assert '\n' not in message and 'in use by another run: pid 4242 on gpu-node-7' in message
    assert f'if that run is known to be dead (its machine is gone), remove {lock}' in message


def test_the_same_job_on_this_host_is_judged_by_its_process(tmp_path, job):
    job(SLURM_JOB_ID='123456', SLURM_RESTART_COUNT='1')
    plant_lock(tmp_path, host=run_lock.socket.gethostname(), pid=os.getpid(),
               start_ticks=process_start_ticks(os.getpid()), slurm_job_id='123456')
    assert f'in use by another run: pid {os.getpid()}' in refused(tmp_path)  # alive: never taken over


def test_a_held_flock_is_never_taken_over_even_by_the_same_job(tmp_path, job):
    if run_lock.fcntl is None:
        pytest.skip('no flock here')
    job(SLURM_JOB_ID='123456', SLURM_RESTART_COUNT='1')
    lock = plant_lock(tmp_path, slurm_job_id='123456')
    fd = os.open(lock, os.O_RDONLY)
    try:
        run_lock.fcntl.flock(fd, run_lock.fcntl.LOCK_EX | run_lock.fcntl.LOCK_NB)
        assert 'in use by another run' in refused(tmp_path)
    finally:
        os.close(fd)


def test_the_lock_records_the_job_and_old_records_are_read(tmp_path, job):
    job(SLURM_JOB_ID='77', SLURM_RESTART_COUNT='2', TORCHELASTIC_RUN_ID='none')
    with run_lock.hold(tmp_path, ['main.py']) as held:
        record = json.loads((tmp_path / '.lock').read_text())
        assert (record['slurm_job_id'], record['slurm_restart_count'], record['torchelastic_run_id']) == ('77', 2, None)
        assert '[SLURM job 77]' in str(held.holder)
    old = {'host': 'h', 'pid': 1, 'since': 's', 'start_ticks': 5, 'boot_id': 'b', 'command': 'main.py'}
    plant_lock(tmp_path, **old)
    fd = os.open(tmp_path / '.lock', os.O_RDONLY)
    try:
        assert run_lock._read_holder(fd) == Holder(**old)
    finally:
        os.close(fd)
