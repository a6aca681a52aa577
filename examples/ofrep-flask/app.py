"""A login route that asks Switchyard through OpenFeature, with no Switchyard-specific client.
  pip install flask openfeature-sdk openfeature-provider-ofrep
  SWITCHYARD_URL=http://127.0.0.1:8080 SWITCHYARD_TOKEN=<a decide token> python app.py"""
import os

from flask import Flask, redirect, request
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

TOKEN = os.environ["SWITCHYARD_TOKEN"]
api.set_provider(OFREPProvider(os.environ.get("SWITCHYARD_URL", "http://127.0.0.1:8080"),
                               headers_factory=lambda: {"Authorization": f"Bearer {TOKEN}"}))
flags = api.get_client()
ROLLOUT = os.environ.get("ROLLOUT", "stytch-login")
app = Flask(__name__)
app.get("/healthz")(lambda: "ok")


@app.get("/login")
def login():
    # The flag is the rollout; the context is what POST /v1/decide takes (targeting key = user key).
    context = {"ip": request.remote_addr, "cookies": dict(request.cookies)}
    if "device_id" in request.cookies:
        context["device_id"] = request.cookies["device_id"]
    details = flags.get_string_details(
        ROLLOUT, "legacy", EvaluationContext(request.args.get("user"), context))
    response = redirect("/login/stytch" if details.value == "stytch" else "/login/legacy")
    m = details.flag_metadata
    if "set_cookie_name" in m:  # the sticky cookie that keeps this device's place in line
        response.set_cookie(m["set_cookie_name"], m["set_cookie_value"],
                            max_age=m["set_cookie_max_age"], httponly=True, samesite="Lax")
    return response


if __name__ == "__main__":
    app.run("127.0.0.1", int(os.environ.get("PORT", "5000")))
