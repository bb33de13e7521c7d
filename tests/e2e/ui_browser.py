#!/usr/bin/env python3
"""Drives Debian's headless Chromium through berth's status page, as a person would.

Used by the status page's browser tests (tests/api/ui_browser_itest.cpp, tests/e2e/ui_itest.cpp):

    BERTH_UI_USER=alice BERTH_UI_PASSWORD=... ui_browser.py STEPS_JSON

STEPS_JSON is a list of steps, run in order:
  {"goto": URL}                      open a page (the first step is usually one)
  {"wait": [TEXT, ...], "timeout": S} wait until the page's visible text (innerText) holds
                                     every TEXT; default timeout 60 s
  {"wait_js": EXPR, "timeout": S}    wait until EXPR is truthy in the page
  {"click": CSS}                     click the first element matching CSS
  {"eval": EXPR}                     record EXPR's value (JSON) in the output's "evals"
  {"text": NAME}                     record the visible text under "texts"[NAME]
  {"screenshot": PATH}               save a PNG of the whole page

The account's credentials come from the environment, never argv (world-readable in /proc), and
are given the way a person gives them: the browser meets the 401 and its WWW-Authenticate
challenge, and the driver answers the browser's credential prompt (DevTools Fetch.authRequired).
Nothing adds an Authorization header for the page; the page's own fetch() calls authenticate
the way the browser does it for a person.

Prints one JSON object: {"evals": [...], "texts": {...}, "exceptions": [...], "console": [...]}
("exceptions": uncaught script errors; "console": console and browser log entries, where a
Content-Security-Policy violation would appear). Exit 0 when every step succeeded, 1 when one
failed (the reason and the page's last visible text on stderr), 77 when chromium is missing.
Talks to Chromium over --remote-debugging-pipe: no port, no websocket library.
"""

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

SKIP = 77


class StepFailed(Exception):
    pass


class Browser:
    """One Chromium process and one page, spoken to over the DevTools pipe (fds 3 and 4)."""

    def __init__(self, chromium, user, password):
        self.user = user
        self.password = password
        self.next_id = 0
        self.buffer = b""
        self.session = None
        self.exceptions = []
        self.console = []
        self.profile = tempfile.mkdtemp(prefix="berth-ui-chromium-")
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def wire_pipe():
            # Chromium reads commands on fd 3 and writes replies on fd 4. Move both ends above
            # the low numbers first so neither dup2 overwrites the other.
            high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
            high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-sync", "--hide-scrollbars",
             "--window-size=1280,1000", "--user-data-dir=" + self.profile, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # close_fds=False: the pipe ends are close-on-exec (os.pipe), except 3 and 4 as
            # wired above; pass_fds cannot name fds that exist only after preexec_fn.
            preexec_fn=wire_pipe, close_fds=False)
        os.close(to_child_r)
        os.close(from_child_w)

        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.call("Runtime.enable")
        self.call("Log.enable")
        self.call("Page.enable")
        # Every request pauses here so that a credential prompt reaches this driver.
        self.call("Fetch.enable", {"handleAuthRequests": True, "patterns": [{"urlPattern": "*"}]})

    def close(self):
        try:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    # --- the protocol ------------------------------------------------------------------------

    def send(self, method, params=None, session=True):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.to_child, json.dumps(message).encode() + b"\0")
        return self.next_id

    def read_message(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StepFailed("chromium did not answer in time")
            ready, _, _ = select.select([self.from_child], [], [], min(left, 1.0))
            if not ready:
                if self.proc.poll() is not None:
                    raise StepFailed("chromium exited with %d" % self.proc.returncode)
                continue
            chunk = os.read(self.from_child, 1 << 20)
            if not chunk:
                raise StepFailed("chromium closed the DevTools pipe")
            self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(raw)

    def call(self, method, params=None, session=True, timeout=30):
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            message = self.read_message(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise StepFailed("%s: %s" % (method, message["error"]))
                return message.get("result", {})
            if "method" in message:
                self.on_event(message)

    def pump(self, seconds):
        """Handles events for up to `seconds` (the page keeps loading and polling meanwhile)."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0 and b"\0" not in self.buffer:
                return
            ready = b"\0" in self.buffer or select.select([self.from_child], [], [], max(left, 0))[0]
            if not ready:
                return
            if b"\0" not in self.buffer:
                chunk = os.read(self.from_child, 1 << 20)
                if not chunk:
                    raise StepFailed("chromium closed the DevTools pipe")
                self.buffer += chunk
                continue
            message = self.read_message(time.monotonic() + 5)
            if "method" in message:
                self.on_event(message)

    def on_event(self, message):
        method = message["method"]
        params = message.get("params", {})
        if method == "Fetch.requestPaused":
            self.send("Fetch.continueRequest", {"requestId": params["requestId"]})
        elif method == "Fetch.authRequired":
            # The credential prompt a person would fill in.
            self.send("Fetch.continueWithAuth", {
                "requestId": params["requestId"],
                "authChallengeResponse": {"response": "ProvideCredentials",
                                          "username": self.user, "password": self.password}})
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.exceptions.append(text)
        elif method == "Runtime.consoleAPICalled":
            args = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
            self.console.append("console.%s: %s" % (params.get("type"), " ".join(args)))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.console.append("%s/%s: %s" % (entry.get("source"), entry.get("level"),
                                               entry.get("text")))

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise StepFailed("evaluating %s threw: %s" % (expression, result["exceptionDetails"]))
        return result.get("result", {}).get("value")

    def visible_text(self):
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    # --- steps -------------------------------------------------------------------------------

    def wait_until(self, check, what, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if check():
                return
            if time.monotonic() > deadline:
                raise StepFailed("timed out after %s s waiting for %s" % (timeout, what))
            self.pump(0.25)

    def run(self, step, output):
        if not isinstance(step, dict):
            raise StepFailed("a step must be an object: %s" % json.dumps(step))
        timeout = step.get("timeout", 60)
        if "goto" in step:
            self.call("Page.navigate", {"url": step["goto"]})
        elif "wait" in step:
            texts = step["wait"]
            self.wait_until(lambda: all(t in self.visible_text() for t in texts),
                            "the page to show %s" % json.dumps(texts), timeout)
        elif "wait_js" in step:
            self.wait_until(lambda: bool(self.evaluate(step["wait_js"])), step["wait_js"], timeout)
        elif "click" in step:
            selector = json.dumps(step["click"])
            if not self.evaluate("(() => { const e = document.querySelector(%s); "
                                 "if (!e) return false; e.click(); return true; })()" % selector):
                raise StepFailed("nothing to click matches %s" % step["click"])
        elif "eval" in step:
            output["evals"].append(self.evaluate(step["eval"]))
        elif "text" in step:
            output["texts"][step["text"]] = self.visible_text()
        elif "screenshot" in step:
            metrics = self.call("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics.get("contentSize")
            shot = self.call("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": max(size["width"], 1280),
                         "height": max(size["height"], 600), "scale": 1}})
            with open(step["screenshot"], "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        else:
            raise StepFailed("unknown step %s" % json.dumps(step))
        self.pump(0)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("ui_browser: chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return SKIP
    steps = json.loads(sys.argv[1])
    output = {"evals": [], "texts": {}, "exceptions": [], "console": []}
    browser = Browser(chromium, os.environ.get("BERTH_UI_USER", ""),
                      os.environ.get("BERTH_UI_PASSWORD", ""))
    status = 0
    try:
        for step in steps:
            browser.run(step, output)
    except StepFailed as e:
        status = 1
        print("ui_browser: %s" % e, file=sys.stderr)
        try:
            print("ui_browser: the page showed:\n%s" % browser.visible_text(), file=sys.stderr)
        except StepFailed:
            pass
    finally:
        output["exceptions"] = browser.exceptions
        output["console"] = browser.console
        browser.close()
    print(json.dumps(output))
    return status


if __name__ == "__main__":
    sys.exit(main())
