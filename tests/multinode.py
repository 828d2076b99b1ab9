"""Two torchrun agents on localhost standing for two nodes (c10d rendezvous, gloo), as a cluster runs main.py."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
TINY = ['--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25', '--sample_size', '32',
        '--sample_duration', '8', '--n_threads', '0', '--no_progress', '--no_cuda', '--distributed',
        '--learning_rate', '0.05', '--n_val_samples', '1', '--checkpoint', '0', '--dist_timeout', '120',
        '--precision', 'fp32', '--cpu_threads', '1']  # runs compared bitwise: no timed choice of math or threads


def free_port() -> int:
    """A TCP port nobody listens on right now (for the rendezvous)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def environment(**extra: str) -> dict:
    """The agents' environment: one compute thread each (two agents share two cores), output unbuffered."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1', **extra)
    env.pop('RANK', None)
    env.pop('WORLD_SIZE', None)
    return env


def agent_command(args: Sequence[str], port: int, nnodes: str = '2', max_restarts: int = 0) -> List[str]:
    """One torchrun agent of ``nnodes`` nodes, one process each, running ``main.py args``."""
    return [sys.executable, '-m', 'torch.distributed.run', '--nnodes', nnodes, '--nproc_per_node', '1',
            '--rdzv_backend', 'c10d', '--rdzv_endpoint', f'127.0.0.1:{port}', '--rdzv_id', f'test{port}',
            '--max_restarts', str(max_restarts), '--monitor_interval', '0.5', 'main.py', *args]


class Job:
    """Two (or ``agents``) torchrun agents of one job, started together; their output kept apart."""

    def __init__(self, args: Sequence[str], tmp: Path, agents: int = 2, nnodes: str = '2', max_restarts: int = 0,
                 env: Optional[dict] = None):
        port = free_port()
        self.logs = [tmp / f'agent{k}.log' for k in range(agents)]
        self.procs = []
        for k, log in enumerate(self.logs):
            if k:
                time.sleep(1.5)  # agent 0 first: it hosts the rendezvous store, as the endpoint's node does
            with open(log, 'w') as out:
                self.procs.append(subprocess.Popen(agent_command(args, port, nnodes, max_restarts), cwd=ROOT,
                                                   stdout=out, stderr=subprocess.STDOUT, env=env or environment(),
                                                   start_new_session=True))

    def output(self, k: int) -> str:
        """What agent ``k`` and its worker printed so far."""
        return self.logs[k].read_text(errors='replace')

    def wait_for(self, ready: Callable[['Job'], bool], timeout: float = 240) -> None:
        """Block until ``ready(self)`` (polled), or fail the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not ready(self):
            if time.monotonic() > deadline or all(p.poll() is not None for p in self.procs):
                raise AssertionError('the job never reached the awaited point:\n' + self.all_output())
            time.sleep(0.2)

    def wait(self, timeout: float = 300) -> List[int]:
        """Every agent's exit code (each killed with its workers after ``timeout``)."""
        codes = []
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                codes.append(p.wait(max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                codes.append(p.wait())
        return codes

    def signal_workers(self, sig: int, agent: Optional[int] = None) -> None:
        """Send ``sig`` to every process under the agents (or under agent ``agent`` alone), as a scheduler signals
        every process of a job step (SLURM), the DataLoader workers too."""
        for k, p in enumerate(self.procs):
            if agent is None or k == agent:
                for pid in descendants(p.pid):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass

    def main_worker(self, agent: int) -> int:
        """The pid of the main.py process agent ``agent`` started."""
        children = [pid for pid in descendants(self.procs[agent].pid) if parent(pid) == self.procs[agent].pid]
        assert children, self.all_output()
        return children[0]

    def all_output(self) -> str:
        """Every agent's output, labelled."""
        return '\n'.join(f'--- agent {k}\n{self.output(k)[-4000:]}' for k in range(len(self.logs)))


def parent(pid: int) -> int:
    """The parent of process ``pid`` (Linux /proc), 0 if it is gone."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return 0
    return int(stat[stat.rindex(')') + 2:].split()[1])


def descendants(pid: int) -> List[int]:
    """Every process below ``pid`` (children, their children, ...), from /proc."""
    parents = {int(e): parent(int(e)) for e in os.listdir('/proc') if e.isdigit()}
    found, frontier = [], [pid]
    while frontier:
        children = [c for c, p in parents.items() if p in frontier]
        found += children
        frontier = children
    return found
