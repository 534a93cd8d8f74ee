"""The HTTP floor: the serving stack (Flask under the same gunicorn config) doing no work.

It answers POST /predict with a constant JSON body, so the difference between it and the
real server is the cost of validation, prediction and metrics, not of HTTP.
"""

from flask import Flask, jsonify

app = Flask(__name__)
_BODY = {"predictions": [0], "model_version": "0", "alias": "floor"}


@app.get("/ready")
def ready():
    return jsonify(ready=True)


@app.post("/predict")
def predict():
    return jsonify(_BODY)
