"""Serving on SageMaker's Hugging Face inference container, and the same stack locally.

protocol  what crosses the wire: the params codec, typed params and responses
client    the EndpointClient interface (LocalEndpoint here, aws.predict for SageMaker), predict
handler   model_fn / input_fn / predict_fn / output_fn for every engine, as the toolkit calls them
toolkit   the toolkit's side of a request: headers, body, status, deadline
package   model_artifact.tar.gz: model files and code/
local     the local endpoint (Multi Model Server + the toolkit, no Docker), predict_local
"""
