"""SageMaker entry point (code/inference.py): the Hugging Face inference toolkit imports this
module and calls its functions; the implementation is the installed transcription-benchmarks."""

from transcription_benchmarks.serving.handlers.transformers import (  # noqa: F401
    input_fn,
    model_fn,
    output_fn,
    predict_fn,
)
