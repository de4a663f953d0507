"""Processor events: declared names only, handlers called in order, errors surface as ErrorFrames."""

import pytest

from apipeline.errors import PipelineError
from apipeline.frames import Frame, TextFrame
from apipeline.processors.frame_processor import FrameDirection, FrameProcessor
from apipeline.testing import run_pipeline


class Announcer(FrameProcessor):
    EVENTS = ("on_text",)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            await self._call_event_handler("on_text", frame.text)
        await self.push_frame(frame, direction)


async def test_handlers_of_declared_events_run_in_order_sync_or_async():
    p = Announcer()
    seen = []

    @p.event_handler("on_text")
    def first(proc, text):
        seen.append(("sync", proc is p, text))

    @p.event_handler("on_text")
    async def second(proc, text):
        seen.append(("async", proc is p, text))

    await run_pipeline(p, [TextFrame("a"), TextFrame("b")])
    assert seen == [("sync", True, "a"), ("async", True, "a"), ("sync", True, "b"), ("async", True, "b")]


def test_a_misspelled_event_is_refused_naming_the_valid_ones():
    with pytest.raises(PipelineError, match=r"unknown event 'on_txt'; valid events: on_text"):
        Announcer().add_event_handler("on_txt", lambda *a: None)
    with pytest.raises(PipelineError, match="valid events: none"):
        FrameProcessor().event_handler("on_anything")


async def test_a_raising_handler_becomes_an_error_frame():
    p = Announcer()
    p.add_event_handler("on_text", lambda proc, text: 1 / 0)
    out = await run_pipeline(p, [TextFrame("a")])
    assert out.errors and "ZeroDivisionError" in out.errors[0].error
