"""The qemu platform's cache layers: the build's disk checkpointed after boot and after each top-level task, so
that a later build with the same beginning resumes where they part (engine.cache.layer_store keeps them,
engine.build.layer_keys names them).

The disk QEMU writes is always the newest overlay of a chain on the base image. A checkpoint freezes it
(blockdev-snapshot-sync: QEMU goes on writing a new overlay on top of it), so a layer costs no copy: it is
the overlay that took the task's writes, created in its own layer folder from the start. Its first layer
(after boot and connect) also keeps the VM's memory and devices, and so does a later layer when the tasks
since the last such layer took WORTH times what saving one does: the layer before the recipe's last task (the
one most edited) on that alone, any other once STATE_EVERY seconds of tasks have passed too (a state is as
big as the memory the guest uses: the cache holds one per so much work at most). A build on the same base,
a rebuild after editing a task, or a failed build once fixed, resumes a running machine near where it parts
instead of booting one (a warm boot; layer_steps.RotateKeys then gives it this build's keys).
"""
from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.build.layer_keys import TaskKey, digest
from engine.build.play import Play
from engine.build.play_state import NotKept, snapshot
from engine.build.runner import BuildState
from engine.build.task_cache import Resumed
from engine.cache.layer_store import Layer, LayerLock, LayerRecord, LayerStore
from engine.errors import BuildError
from modules.platforms.qemu.machine import Machine
from modules.platforms.qemu.vm_state import freeze_disk, save_state

DISK, STATE, LOGIN_KEY, HOST_KEY, VARS = "disk.qcow2", "state", "login_key", "host_key.pub", "OVMF_VARS.fd"
PLAY = "play"                            # the record's extra: the play's state after the layer's task
SAVE = "save_seconds"                    # the record's extra: what saving the VM's memory took
MIGRATABLE = ("qcow2", "raw")            # base formats QEMU saves a VM's state over (a VMDK chain blocks it)
WORTH = 10                               # a later layer keeps a state when its tasks took this many times a save
STATE_EVERY = 30.0                       # ... and, but for the layer before the last task, this many seconds
RESUME_COST = 5.0                        # seconds from QEMU's start to SSH when resuming a state (measured: 1.3)


@dataclass(frozen=True)
class Plan:
    """Where a build starts: on the base image (start None), or on a layer, booted or resumed."""

    keys: tuple[str | None, ...]         # the booted machine's layer, then the layer after each top-level task
    why_not: tuple[str, ...]             # for each task whose key is None: why it is not cached
    start: Layer | None = None
    warm: bool = False

    @property
    def done(self) -> int:
        """Top-level tasks the start layer already holds."""
        return self.start.record.index if self.start else 0


def first_key(vm_settings: dict, base: Path) -> str:
    """The booted machine's layer: the base image (by path, size and time: a rebuilt base is another one) and
    every setting that shapes the VM."""
    status = base.stat()
    return digest({"base": [str(base), status.st_size, status.st_mtime_ns], "vm": vm_settings})


def plan(store: LayerStore, first: str, tasks: list[TaskKey], fresh: bool, max_age: float | None = None) -> Plan:
    """Start at the deepest layer there is (unless fresh: --no-cache), resumed warm if it kept a state.
    If it did not, booting it costs a boot: when resuming the deepest layer that kept a state and running
    the tasks after it again costs less (cheap tasks keep no state), that is where the build starts."""
    keys = (first, *(task.key for task in tasks))
    why_not = tuple(task.why_not for task in tasks)
    found: list[Layer] = []
    for key in keys if not fresh else ():
        layer = store.find(key) if key else None
        if layer is None or (max_age is not None and layer.age > max_age):   # cache: {max_age}: made afresh
            break
        found.append(layer)
    if not found:
        return Plan(keys, why_not)
    deepest = found[-1]
    if deepest.record.has_state:
        return Plan(keys, why_not, deepest, warm=True)
    warm = max((layer for layer in found if layer.record.has_state), key=lambda layer: layer.record.index,
               default=None)
    again = sum(layer.record.seconds for layer in found[warm.record.index + 1:]) if warm else None
    if warm and again is not None and again + RESUME_COST < found[0].record.seconds:
        return Plan(keys, why_not, warm, warm=True)
    return Plan(keys, why_not, deepest, warm=False)


@dataclass
class LayerWriter:
    """Writes the build's layers as its tasks finish, and holds its layers' locks until the build ends."""

    store: LayerStore
    plan: Plan
    state: BuildState
    labels: tuple[str, ...]              # the top-level tasks' labels
    secret_values: list[str]
    base_format: str = "qcow2"
    renew_after: float | None = None     # seconds: an older layer with a key of this build's is made anew
                                         # (0 with --no-cache; the recipe's cache: {max_age})
    machine: Machine | None = None
    writing: LayerLock | None = None     # the layer state.disk will become, if it is to be kept
    keys_files: tuple[Path, str] | None = None     # this boot's login key and host key, for a kept state
    locks: list[LayerLock] = field(default_factory=list)       # the layers used, and those this build wrote
    resumed: Resumed | None = None
    caching: bool = True                 # False once a layer could not be kept: none after it is either
    since_state: float = 0.0             # seconds of tasks since the last layer with a state
    save_cost: float | None = None       # what saving a state took (the booted machine's layer says)
    _index: int = 0                      # the layer state.disk will become: 0 booted, k after task k
    _commits: asyncio.Task | None = None  # the last layer being recorded (each waits for the one before)

    def first_top(self) -> Path:
        """The overlay the build starts writing: in the folder of the first layer it will keep, if any."""
        self._index = self.plan.done
        if self.plan.start:
            lock = self.store.use(self.plan.start.record.key)
            if lock is None:
                raise BuildError("the cache layer this build resumes was removed meanwhile",
                                 hint="run the build again")
            self.locks.append(lock)
            if self.plan.done:
                self.resumed = Resumed(self.plan.done, self._seconds(), self._play_state())
            self.since_state = 0.0 if self.plan.warm else sum(self._seconds())
            self.save_cost = self._first_save_cost()
            self._index += 1
        return self._next_top()

    def _seconds(self) -> tuple[float, ...]:
        """What each task up to the start layer took (the layers under it, walked down)."""
        found: dict[int, float] = {}
        layer = self.plan.start
        while layer and layer.record.index > 0:
            found[layer.record.index] = layer.record.seconds
            layer = self.store.find(layer.record.parent) if layer.record.parent else None
        return tuple(found.get(index, 0.0) for index in range(1, self.plan.done + 1))

    def _first_save_cost(self) -> float | None:
        layer = self.plan.start
        while layer and layer.record.parent:
            layer = self.store.find(layer.record.parent)
        return layer.record.extra.get(SAVE) if layer else None

    def _play_state(self) -> dict:
        assert self.plan.start
        return self.plan.start.record.extra.get(PLAY) or {}

    def _next_top(self) -> Path:
        keys = self.plan.keys
        while self.caching and self._index < len(keys) and keys[self._index]:
            kept = self.store.find(keys[self._index])
            if kept is None:
                break
            if self.renew_after is not None and kept.age >= self.renew_after:
                self.store.remove(kept.record.key)  # with those on it; not if a build uses it (then none is kept)
                break
            # kept by another build (this one runs its task again, resuming an earlier layer with a state, or
            # a concurrent build wrote it): the overlay takes this task's writes too and becomes the next layer
            self._index += 1
        key = keys[self._index] if self._index < len(keys) else None
        self.writing = self.store.begin(key, self.state.build.info.id) if key and self.caching else None
        if self.writing:
            return self.store.folder(key) / DISK
        assert self.state.work_dir
        return self.state.work_dir / f"top-{self._index}.qcow2"

    async def after_task(self, index: int, play: Play, seconds: float) -> None:
        """engine.build.task_cache.TaskCache: the layer after top-level task `index` (from 0)."""
        if index + 1 == self._index:
            await self.checkpoint(play, seconds)
        elif index + 1 < self._index:       # run again, its layer kept already: still time since the last state
            self.since_state += seconds

    async def checkpoint(self, play: Play | None, seconds: float) -> None:
        """The layer state.disk was to become is whole: freeze it and record it (the machine keeps running on
        a new overlay). Does nothing once the build is past what can be cached."""
        lock, index = self.writing, self._index
        if lock is None or not self.caching or self.machine is None or self.machine.monitor is None:
            return
        key, state = self.plan.keys[index], self.state
        assert key is not None and state.connection is not None
        try:
            play_state = snapshot(play, self.secret_values) if play else {}
        except NotKept as why:
            state.events.emit("warning", msg=f"no cache layer from {self.labels[index - 1]!r} on: {why}")
            self.caching = False        # QEMU still writes in the layer's folder: release() removes it
            return
        self.since_state += seconds if index else 0.0
        worth = self.save_cost is not None and self.since_state >= WORTH * self.save_cost
        keep_state = index == 0 or (worth and (index == len(self.plan.keys) - 2 or self.since_state >= STATE_EVERY))
        synced = not keep_state or self.base_format not in MIGRATABLE
        if synced:
            # booted without its memory, the layer's disk must hold what the guest has written (a layer with its
            # memory is resumed: what the guest had not written yet is in it, and goes to the layers above)
            await state.connection.run("sync", timeout=120)
        self._index += 1
        next_top = self._next_top()
        monitor = self.machine.monitor
        extra: dict = {PLAY: play_state}
        self.locks.append(lock)             # whatever happens now, release() lets it go (and removes it unrecorded)
        await monitor.execute("stop")
        try:
            await freeze_disk(monitor, next_top)
            if keep_state:
                keep_state = await self._keep_state(key, extra)
        finally:
            await monitor.execute("cont")
        state.disk = next_top               # the overlay QEMU writes now: shutdown and export read the chain
        if not keep_state and not synced:   # its memory not kept after all, and its disk not whole without it
            self.caching = False            # release() removes it, and the layer begun on it
            state.events.emit("warning", msg="this build keeps no more cache layers")
            return
        record = LayerRecord(key=key, parent=self.plan.keys[index - 1] if index else None,
                             recipe=state.recipe.name, step="boot" if index == 0 else self.labels[index - 1],
                             index=index, seconds=seconds, created=time.time(), has_state=keep_state, extra=extra)
        self._commits = asyncio.create_task(self._commit(self._commits, lock, record))

    async def _commit(self, before: asyncio.Task | None, lock: LayerLock, record: LayerRecord) -> bool:
        """Record the layer once its files are on disk, while the machine goes on with the next task; never
        before the layer under it is recorded (a layer whose parent has no record would look whole, and be
        removed with that parent's folder). A layer not recorded is removed by release()."""
        if before is not None and not await before:
            return False
        try:
            await asyncio.to_thread(self.store.commit, record)
        except OSError as why:
            self.caching = False
            self.state.events.emit("warning", msg=f"cache layer {record.step!r} not kept ({why}); none after it is")
            return False
        lock.share()
        return True

    async def settle(self) -> None:
        """Wait for the layers being recorded (a failure was a warning already)."""
        if self._commits is not None:
            await asyncio.gather(self._commits, return_exceptions=True)

    async def _keep_state(self, key: str, extra: dict) -> bool:
        """Save the stopped VM's memory and devices with the layer; False if QEMU cannot (a disk format that
        does not migrate, such as a VMDK base): the layer is still one, booted rather than resumed."""
        assert self.machine and self.machine.monitor and self.keys_files
        folder = self.store.folder(key)
        started = time.monotonic()
        try:
            await save_state(self.machine.monitor, folder / STATE)
        except BuildError as why:
            (folder / STATE).unlink(missing_ok=True)
            self.state.events.emit("warning", msg=f"the VM's memory is not kept with its cache layer ({why.message})")
            return False
        extra[SAVE] = time.monotonic() - started
        self.save_cost, self.since_state = self.save_cost or extra[SAVE], 0.0
        login_key, host_key = self.keys_files
        shutil.copyfile(login_key, folder / LOGIN_KEY)
        (folder / LOGIN_KEY).chmod(0o600)
        (folder / HOST_KEY).write_text(host_key + "\n")
        if self.machine.spec.ovmf_vars:
            shutil.copyfile(self.machine.spec.ovmf_vars, folder / VARS)
        return True

    def release(self) -> None:
        """The build is over (the VM is gone, settle() done): unrecorded layers go, the others stay for the next
        build (remove_unfinished leaves a recorded layer alone)."""
        held = [*self.locks, *([self.writing] if self.writing else [])]
        self.locks, self.writing = [], None
        for lock in held:
            lock.release()
        for lock in held:
            self.store.remove_unfinished(lock.path.parent)
