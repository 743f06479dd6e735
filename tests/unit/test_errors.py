"""One error hierarchy (`seglens.errors`): a root, a code on each, the old builtin bases
kept, the old import paths the same classes, and one way to turn a ValueError into
`InvalidInput`."""

from __future__ import annotations

import pickle

import pytest

from seglens import errors
from seglens.errors import (
    BatchBusy,
    ExecutorUnavailable,
    ImageError,
    InvalidInput,
    InvalidModelSpec,
    LLMTimeoutError,
    ModelNotAvailableError,
    QueueFull,
    SegLensError,
    ServiceError,
    TransitionError,
)


def test_every_error_class_derives_from_the_root_and_keeps_its_builtin_base():
    assert issubclass(ImageError, ValueError) and issubclass(InvalidModelSpec, ValueError)
    for cls in (ModelNotAvailableError, BatchBusy, ExecutorUnavailable):
        assert issubclass(cls, RuntimeError)
    classes = [getattr(errors, name) for name in errors.__all__]
    assert all(issubclass(cls, SegLensError) for cls in classes)
    assert len({cls.code for cls in classes if not issubclass(cls, ServiceError)}) == len(
        [cls for cls in classes if not issubclass(cls, ServiceError)]
    )


def test_the_old_import_paths_name_the_same_classes():
    from seglens.core.images import ImageError as core_image_error
    from seglens.llm import LLMError
    from seglens.models.hub import ModelNotAvailableError as hub_error
    from seglens.models.registry import InvalidModelSpec as registry_error
    from seglens.services.errors import NotFound
    from seglens.services.jobs.executors import ExecutorUnavailable as executor_error
    from seglens.services.jobs.headless import BatchBusy as batch_busy
    from seglens.storage.records import TransitionError as records_error

    assert core_image_error is ImageError and hub_error is ModelNotAvailableError
    assert registry_error is InvalidModelSpec and batch_busy is BatchBusy
    assert executor_error is ExecutorUnavailable and records_error is TransitionError
    assert issubclass(NotFound, SegLensError) and issubclass(LLMError, SegLensError)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ImageError("x.png: not an image", "not_an_image"), "not_an_image"),
        (ImageError("broken"), "invalid_image"),
        (ModelNotAvailableError("sam is missing"), "model_not_available"),
        (BatchBusy("busy"), "batch_busy"),
        (ExecutorUnavailable("no ray"), "executor_unavailable"),
        (TransitionError("running", "job j is already running"), "invalid_transition"),
        (InvalidInput("invalid_query", "empty query"), "invalid_query"),
        (QueueFull("queue_full", "too much", 7), "queue_full"),
        (LLMTimeoutError("slow", status=None), "llm_timeout"),
    ],
)
def test_each_error_has_its_code_a_message_and_survives_pickling(error, code):
    assert error.code == code and error.message == str(error) and error.message
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and copy.code == code and str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


def test_invalid_input_turns_a_value_error_into_invalid_input_with_the_code():
    from seglens.services.errors import invalid_input

    with pytest.raises(InvalidInput) as caught, invalid_input("invalid_params"):
        raise ValueError("alpha must be a number in [0, 1], got 2")
    assert caught.value.code == "invalid_params" and "alpha" in caught.value.message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(KeyError), invalid_input("invalid_params"):
        raise KeyError("not a ValueError: passes through")
