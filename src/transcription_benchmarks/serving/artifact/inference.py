"""SageMaker entry point (code/inference.py): the Hugging Face inference toolkit imports this
module and calls its functions; the implementation is the installed transcription-benchmarks,
whose one handler serves the engine code/serving.json names."""

from transcription_benchmarks.serving.handler import (  # noqa: F401
    input_fn,
    model_fn,
    output_fn,
    predict_fn,
)
