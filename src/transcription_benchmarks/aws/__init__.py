"""SageMaker through boto3 alone: deploy, predict (real-time and async), teardown, remote runs."""
