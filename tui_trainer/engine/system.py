"""System readings: CPU, RAM, this process, and every NVIDIA GPU through NVML.

No GPU (no driver, no NVML library, no devices) is a normal result with a reason, never an
error. `PerformanceMonitor` keeps the seed's interface.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

import psutil

from .. import events as ev


class GpuReader:
    """Reads NVML; initialises lazily and once. `error` says why there are no GPUs."""

    def __init__(self) -> None:
        self._nvml = None
        self._handles: list = []
        self.error = ""
        self._init()

    def _init(self) -> None:
        try:
            import pynvml  # provided by nvidia-ml-py
        except Exception:  # noqa: BLE001
            self.error = "no GPU (NVML not installed)"
            return
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._nvml = pynvml
            if not count:
                self.error = "no GPU"
        except Exception:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self.error = "no GPU"

    @staticmethod
    def _try(fn, *args):
        try:
            return fn(*args)
        except Exception:  # noqa: BLE001 - an unsupported reading is shown as unknown
            return None

    def read(self) -> tuple[ev.GpuSample, ...]:
        nv = self._nvml
        if nv is None:
            return ()
        samples = []
        for i, h in enumerate(self._handles):
            name = self._try(nv.nvmlDeviceGetName, h) or f"GPU {i}"
            if isinstance(name, bytes):
                name = name.decode(errors="replace")
            util = self._try(nv.nvmlDeviceGetUtilizationRates, h)
            mem = self._try(nv.nvmlDeviceGetMemoryInfo, h)
            temp = self._try(nv.nvmlDeviceGetTemperature, h, 0)  # NVML_TEMPERATURE_GPU
            power = self._try(nv.nvmlDeviceGetPowerUsage, h)
            limit = self._try(nv.nvmlDeviceGetEnforcedPowerLimit, h)
            samples.append(ev.GpuSample(
                index=i, name=str(name),
                utilization=float(util.gpu) if util is not None else None,
                memory_used=int(mem.used) if mem is not None else None,
                memory_total=int(mem.total) if mem is not None else None,
                temperature=float(temp) if temp is not None else None,
                power_draw=power / 1000.0 if power is not None else None,
                power_limit=limit / 1000.0 if limit is not None else None,
            ))
        return tuple(samples)


class SystemMonitor:
    def __init__(self) -> None:
        self._process = psutil.Process(os.getpid())
        psutil.cpu_percent(interval=None)  # the first reading is meaningless; prime it
        self.gpus = GpuReader()

    def sample(self) -> ev.SystemSample:
        vm = psutil.virtual_memory()
        try:
            rss = self._process.memory_info().rss
        except psutil.Error:
            rss = 0
        return ev.SystemSample(
            cpu_percent=float(psutil.cpu_percent(interval=None)),
            ram_used=int(vm.total - vm.available), ram_total=int(vm.total), process_rss=int(rss),
            gpus=self.gpus.read(), gpu_error=self.gpus.error,
        )


class SystemSampler:
    """A daemon thread emitting a SystemSample every `interval` seconds until stopped."""

    def __init__(self, emit: Callable[[ev.Event], None], interval: float = 2.0) -> None:
        self._emit = emit
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tui-trainer-system", daemon=True)
        self.monitor: SystemMonitor | None = None

    def start(self) -> "SystemSampler":
        self._thread.start()
        return self

    def _run(self) -> None:
        self.monitor = SystemMonitor()
        while not self._stop.wait(self._interval):
            try:
                self._emit(self.monitor.sample())
            except Exception:  # noqa: BLE001 - readings are best-effort
                pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)


class PerformanceMonitor:
    """The seed's monitor: epoch timings and a system summary (GPUs through NVML, not GPUtil)."""

    def __init__(self, total_epochs: int | None = None) -> None:
        self.start_time: float | None = None
        self.epoch_times: list[float] = []
        self.total_epochs = total_epochs
        self._system = SystemMonitor()

    def start_epoch(self) -> None:
        self.start_time = time.perf_counter()

    def end_epoch(self) -> float:
        if self.start_time is None:
            return 0.0
        elapsed = time.perf_counter() - self.start_time
        self.epoch_times.append(elapsed)
        self.start_time = None
        return elapsed

    def get_system_info(self) -> dict:
        s = self._system.sample()
        return {
            "cpu_percent": s.cpu_percent,
            "memory_percent": 100.0 * s.ram_used / s.ram_total if s.ram_total else 0.0,
            "memory_used_gb": s.ram_used / 1024 ** 3,
            "process_rss_gb": s.process_rss / 1024 ** 3,
            "gpu_info": [
                {"id": g.index, "name": g.name, "load": g.utilization,
                 "memory_used": g.memory_used / 1024 ** 2 if g.memory_used is not None else None,
                 "memory_total": g.memory_total / 1024 ** 2 if g.memory_total is not None else None,
                 "temperature": g.temperature, "power_draw": g.power_draw, "power_limit": g.power_limit}
                for g in s.gpus
            ],
            "gpu_error": s.gpu_error,
        }

    def summary_lines(self) -> list[str]:
        lines = []
        if self.epoch_times:
            avg = sum(self.epoch_times) / len(self.epoch_times)
            lines.append(f"average epoch time: {avg:.2f}s")
            if self.total_epochs:
                left = max(0, self.total_epochs - len(self.epoch_times))
                lines.append(f"estimated time left: {avg * left:.2f}s")
        info = self.get_system_info()
        lines.append(f"CPU: {info['cpu_percent']:.1f}%")
        lines.append(f"RAM: {info['memory_percent']:.1f}% ({info['memory_used_gb']:.1f} GB used)")
        for g in info["gpu_info"]:
            mem = (f"{g['memory_used']:.0f}/{g['memory_total']:.0f} MB"
                   if g["memory_used"] is not None else "memory n/a")
            load = f"{g['load']:.0f}%" if g["load"] is not None else "n/a"
            temp = f"{g['temperature']:.0f}°C" if g["temperature"] is not None else "n/a"
            lines.append(f"GPU {g['id']} ({g['name']}): load {load}, {mem}, {temp}")
        if not info["gpu_info"]:
            lines.append(info["gpu_error"] or "no GPU")
        return lines

    def print_performance_summary(self) -> None:
        for line in self.summary_lines():
            print(line)
