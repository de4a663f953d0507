from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SampleType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAMPLE_TYPE_UNSPECIFIED: _ClassVar[SampleType]
    SAMPLE_TYPE_INT16: _ClassVar[SampleType]
    SAMPLE_TYPE_FLOAT32: _ClassVar[SampleType]
SAMPLE_TYPE_UNSPECIFIED: SampleType
SAMPLE_TYPE_INT16: SampleType
SAMPLE_TYPE_FLOAT32: SampleType

class Envelope(_message.Message):
    __slots__ = ("id", "name", "pts", "metadata_json", "client_pts", "cancel", "error", "stop_task", "start_interruption", "stop_interruption", "metrics", "start", "end", "sync", "sync_notify", "update_settings", "user_started_speaking", "user_stopped_speaking", "text", "audio", "image", "app")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PTS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STOP_TASK_FIELD_NUMBER: _ClassVar[int]
    START_INTERRUPTION_FIELD_NUMBER: _ClassVar[int]
    STOP_INTERRUPTION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SYNC_FIELD_NUMBER: _ClassVar[int]
    SYNC_NOTIFY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    USER_STARTED_SPEAKING_FIELD_NUMBER: _ClassVar[int]
    USER_STOPPED_SPEAKING_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    pts: int
    metadata_json: str
    client_pts: int
    cancel: CancelFrame
    error: ErrorFrame
    stop_task: StopTaskFrame
    start_interruption: StartInterruptionFrame
    stop_interruption: StopInterruptionFrame
    metrics: MetricsFrame
    start: StartFrame
    end: EndFrame
    sync: SyncFrame
    sync_notify: SyncNotifyFrame
    update_settings: UpdateSettingsFrame
    user_started_speaking: UserStartedSpeakingFrame
    user_stopped_speaking: UserStoppedSpeakingFrame
    text: TextFrame
    audio: AudioRawFrame
    image: ImageRawFrame
    app: AppFrame
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., pts: _Optional[int] = ..., metadata_json: _Optional[str] = ..., client_pts: _Optional[int] = ..., cancel: _Optional[_Union[CancelFrame, _Mapping]] = ..., error: _Optional[_Union[ErrorFrame, _Mapping]] = ..., stop_task: _Optional[_Union[StopTaskFrame, _Mapping]] = ..., start_interruption: _Optional[_Union[StartInterruptionFrame, _Mapping]] = ..., stop_interruption: _Optional[_Union[StopInterruptionFrame, _Mapping]] = ..., metrics: _Optional[_Union[MetricsFrame, _Mapping]] = ..., start: _Optional[_Union[StartFrame, _Mapping]] = ..., end: _Optional[_Union[EndFrame, _Mapping]] = ..., sync: _Optional[_Union[SyncFrame, _Mapping]] = ..., sync_notify: _Optional[_Union[SyncNotifyFrame, _Mapping]] = ..., update_settings: _Optional[_Union[UpdateSettingsFrame, _Mapping]] = ..., user_started_speaking: _Optional[_Union[UserStartedSpeakingFrame, _Mapping]] = ..., user_stopped_speaking: _Optional[_Union[UserStoppedSpeakingFrame, _Mapping]] = ..., text: _Optional[_Union[TextFrame, _Mapping]] = ..., audio: _Optional[_Union[AudioRawFrame, _Mapping]] = ..., image: _Optional[_Union[ImageRawFrame, _Mapping]] = ..., app: _Optional[_Union[AppFrame, _Mapping]] = ...) -> None: ...

class CancelFrame(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ErrorFrame(_message.Message):
    __slots__ = ("error", "fatal", "processor")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FATAL_FIELD_NUMBER: _ClassVar[int]
    PROCESSOR_FIELD_NUMBER: _ClassVar[int]
    error: str
    fatal: bool
    processor: str
    def __init__(self, error: _Optional[str] = ..., fatal: _Optional[bool] = ..., processor: _Optional[str] = ...) -> None: ...

class StopTaskFrame(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StartInterruptionFrame(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StopInterruptionFrame(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MetricsFrame(_message.Message):
    __slots__ = ("data_json",)
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    data_json: str
    def __init__(self, data_json: _Optional[str] = ...) -> None: ...

class StartFrame(_message.Message):
    __slots__ = ("allow_interruptions", "enable_metrics", "report_only_initial_ttfb", "metrics_interval_s", "audio_in_sample_rate", "audio_out_sample_rate")
    ALLOW_INTERRUPTIONS_FIELD_NUMBER: _ClassVar[int]
    ENABLE_METRICS_FIELD_NUMBER: _ClassVar[int]
    REPORT_ONLY_INITIAL_TTFB_FIELD_NUMBER: _ClassVar[int]
    METRICS_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    AUDIO_IN_SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_OUT_SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    allow_interruptions: bool
    enable_metrics: bool
    report_only_initial_ttfb: bool
    metrics_interval_s: float
    audio_in_sample_rate: int
    audio_out_sample_rate: int
    def __init__(self, allow_interruptions: _Optional[bool] = ..., enable_metrics: _Optional[bool] = ..., report_only_initial_ttfb: _Optional[bool] = ..., metrics_interval_s: _Optional[float] = ..., audio_in_sample_rate: _Optional[int] = ..., audio_out_sample_rate: _Optional[int] = ...) -> None: ...

class EndFrame(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SyncFrame(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SyncNotifyFrame(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpdateSettingsFrame(_message.Message):
    __slots__ = ("settings_json",)
    SETTINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    settings_json: str
    def __init__(self, settings_json: _Optional[str] = ...) -> None: ...

class UserStartedSpeakingFrame(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UserStoppedSpeakingFrame(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TextFrame(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class AudioRawFrame(_message.Message):
    __slots__ = ("sample_type", "sample_rate", "num_channels", "audio", "rank")
    SAMPLE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    NUM_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    sample_type: SampleType
    sample_rate: int
    num_channels: int
    audio: bytes
    rank: int
    def __init__(self, sample_type: _Optional[_Union[SampleType, str]] = ..., sample_rate: _Optional[int] = ..., num_channels: _Optional[int] = ..., audio: _Optional[bytes] = ..., rank: _Optional[int] = ...) -> None: ...

class NdArray(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ImageRawFrame(_message.Message):
    __slots__ = ("encoded", "array", "width", "height", "format")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    array: NdArray
    width: int
    height: int
    format: str
    def __init__(self, encoded: _Optional[bytes] = ..., array: _Optional[_Union[NdArray, _Mapping]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., format: _Optional[str] = ...) -> None: ...

class AppFrame(_message.Message):
    __slots__ = ("type", "fields_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    fields_json: str
    def __init__(self, type: _Optional[str] = ..., fields_json: _Optional[str] = ...) -> None: ...
