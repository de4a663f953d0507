"""Model services as processors: the service is readied at start, its method is called per frame.

:class:`ModelServiceProcessor` is the general adapter (``params_from`` builds the call's params from a
frame, ``emit`` turns the result into the frame to push). The voice processors in
:mod:`~apipeline.processors.models.voice` build on :class:`ServiceProcessor`, which holds what they share:
services readied in ``setup`` through the registry (prepare, load, self-test, bounded by the task's
``start_timeout``), and a refused start when that fails -- the task reports the error and never sends
``StartFrame`` (used without a task: a fatal ``ErrorFrame`` upstream at ``StartFrame``, which is not passed
on) -- so a broken model never produces silent garbage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from apipeline.errors import ModelError, ParameterError, UnknownNameError
from apipeline.frames import Frame, StartFrame
from apipeline.models import ModelRegistry
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor


class ServiceProcessor(FrameProcessor):
    """A processor that needs registry services ready before it takes frames."""

    def __init__(
        self, registry: ModelRegistry | None, services: Sequence[str], *, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        if registry is None and services:
            raise ParameterError(f"{type(self).__name__}: services {list(services)} need a registry")
        self._registry = registry
        self.services = tuple(services)
        for service in self.services:
            assert registry is not None
            registry.state(service)  # unknown service: ServiceStateError now, not at start
        self.refused: BaseException | None = None
        self._ready = False

    @property
    def registry(self) -> ModelRegistry:
        assert self._registry is not None
        return self._registry

    async def setup(self) -> None:
        """Ready the services before the task sends ``StartFrame``; raising here refuses the start."""
        await super().setup()
        await self._ready_all()

    async def _ready_all(self) -> None:
        for service in self.services:
            await self.registry.ready(service)
        await self.on_ready()
        self._ready = True

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        if self._ready:
            return
        try:  # used without a task calling setup(): ready now, refuse the start on failure
            await self._ready_all()
        except ModelError as exc:
            self.refused = exc
            await self.push_error(f"{self.name}: start refused: {type(exc).__name__}: {exc}", fatal=True)

    async def on_ready(self) -> None:
        """Called once every service is ready (fetch model properties here); raising refuses the start."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if self.refused is not None:
            return  # not started: neither the StartFrame nor anything after it goes on
        if direction is FrameDirection.DOWNSTREAM and self.accepts(frame):
            out = await self.handle(frame)
            if out is not None:
                await self.push_frame(out, direction)
            return
        await self.push_frame(frame, direction)

    def accepts(self, frame: Frame) -> bool:
        return False

    async def handle(self, frame: Any) -> Frame | None:
        """Process an accepted frame; return the frame to push downstream (None: push nothing)."""
        raise NotImplementedError


class ModelServiceProcessor(ServiceProcessor):
    """Calls ``service.method`` for every frame of ``frame_types`` and pushes what ``emit`` makes of it.

    Args:
        registry: where the service is registered.
        service, method: what to call.
        frame_types: the frame classes this processor consumes; others pass through.
        params_from: frame -> the call's params dict (validated against the service's info).
        emit: (frame, result) -> the frame to push, or None to push nothing; may be async.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        service: str,
        method: str,
        *,
        frame_types: tuple[type[Frame], ...],
        params_from: Callable[[Any], dict[str, Any]],
        emit: Callable[[Any, Any], Frame | Awaitable[Frame | None] | None],
        name: str | None = None,
    ) -> None:
        super().__init__(registry, [service], name=name)
        methods = [m["name"] for m in registry.info(service)["methods"]]
        if method not in methods:
            raise UnknownNameError(
                f"service {service!r} has no method {method!r} (methods: {', '.join(methods)})"
            )
        self.service, self.method = service, method
        self.frame_types = frame_types
        self.params_from, self.emit = params_from, emit

    def accepts(self, frame: Frame) -> bool:
        return isinstance(frame, self.frame_types)

    async def handle(self, frame: Any) -> Frame | None:
        result = await self.registry.run(self.service, self.method, self.params_from(frame))
        out = self.emit(frame, result)
        if isinstance(out, Awaitable):
            out = await out
        return out
