"""gradguard's watchdog for any training loop: standard library only (Python 3.8+).

Register a run, then send each step's loss and gradient norms and apply the decision that comes
back, before the optimizer step. Steps are sent in small batches with the decisions of earlier
steps coming back; by default every step is sent at once (batch=1), which is what a loop that
wants to act on the *current* step needs.

    from gradguard_client import Gradguard
    guard = Gradguard("http://127.0.0.1:3000", token, name="resnet-run", layer_names=names)
    decision = guard.step(step, loss.item(), grad_norm, layer_norms, lr=base_lr, weight_norm=w)
"""
import json
import math
import urllib.error
import urllib.request


class GradguardError(RuntimeError):
    pass


class Gradguard:
    def __init__(self, url, token, name, layer_names=(), policy="gradguard", timeout=10.0):
        self.url = url.rstrip("/") + "/api/v1"
        self.token = token
        self.timeout = timeout
        run = self._post("/runs", {"name": name, "layerNames": list(layer_names), "watchdog": {"policy": policy}})
        self.run_id = run["id"]

    def step(self, step, loss, grad_norm, layer_norms=(), lr=None, weight_norm=None):
        """Sends one step; returns its decision: clipTo, lrScale, skip, rollback, stop."""
        return self.steps([{"step": step, "loss": loss, "gradNorm": grad_norm, "layerNorms": list(layer_norms), "lr": lr, "weightNorm": weight_norm}])[0]

    def steps(self, batch):
        """Sends several steps (in order); returns one decision per step. Retrying is safe."""
        clean = [{key: _finite_or_none(value) for key, value in s.items()} for s in batch]
        for s in clean:
            s["layerNorms"] = [_finite_or_none(v) for v in s.get("layerNorms") or []]
            for key in ("lr", "weightNorm"):
                if s.get(key) is None:
                    s.pop(key, None)
        return self._post("/runs/%s/steps" % self.run_id, {"steps": clean})["decisions"]

    def _post(self, path, body):
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode("utf-8"),
            headers={"content-type": "application/json", "authorization": "Bearer " + self.token},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            problem = json.loads(error.read() or b"{}")
            raise GradguardError("%s %s: %s" % (error.code, problem.get("title", ""), problem.get("detail", ""))) from None


def _finite_or_none(value):
    # JSON has no NaN or Infinity: gradguard takes null, and skips such a step.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
