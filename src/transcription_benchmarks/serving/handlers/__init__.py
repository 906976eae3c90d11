"""SageMaker inference handlers, one per backend, in the form the Hugging Face inference toolkit
loads from an artifact's code/inference.py (model_fn, input_fn, predict_fn, output_fn)."""
