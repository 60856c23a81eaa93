"""The error hierarchy of the public API."""

from __future__ import annotations

import pickle

import pytest

import audiocore


def test_hierarchy() -> None:
    for cls in (audiocore.DecodeError, audiocore.ProtocolError):
        assert issubclass(cls, audiocore.AudioCoreError) and issubclass(cls, ValueError)
    assert issubclass(audiocore.OpusError, audiocore.AudioCoreError)
    assert not issubclass(audiocore.OpusError, ValueError)
    assert issubclass(audiocore.BufferFullError, audiocore.AudioCoreError)


def test_attributes_and_pickling() -> None:
    errors = [
        audiocore.DecodeError("bad byte at offset 3", 3),
        audiocore.ProtocolError("audioData.data: not base64", "audioData.data"),
        audiocore.OpusError(-4, "corrupted stream", "decode"),
        audiocore.BufferFullError("full"),
    ]
    for err in errors:
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err) and str(copy) == str(err)
    assert errors[0].offset == 3
    assert errors[1].field == "audioData.data"
    assert (errors[2].code, errors[2].text) == (-4, "corrupted stream")
    assert str(errors[2]) == "decode: libopus error -4: corrupted stream"


def test_caught_as_value_error() -> None:
    with pytest.raises(ValueError):
        audiocore.b64decode("***")
