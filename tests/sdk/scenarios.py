"""VMware's official Python SDK against vcproxy: the scenarios tests/sdk.rs runs.

Run by `cargo test --test sdk` with the pinned SDK in .venv-sdk (made by
`bash tests/sdk/venv.sh`, which .ci/run calls); not meant to be run by hand, though
it can be, given a spec file:

    .venv-sdk/bin/python -B tests/sdk/scenarios.py SPEC.json

The Rust test starts simulated vCenters and the proxy in front of them, serving HTTPS
with a certificate from a CA made for the run, asks the simulators directly what each
List Tasks filter and Get Task must return, and writes all of it to SPEC.json:

    server, server_down    "127.0.0.1:PORT" of the proxy, and of a second proxy one of
                           whose vCenters answers every List Tasks with 503
    ca                     the CA's PEM file: the only trust there is (the test removes
                           REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE from our environment)
    user, password         an administrator of every simulator
    lists                  [{name, filter_spec, result_spec, expected: {id: /api info}}]
    over_1000              {filter_spec, matching}: more than 1000 tasks in all
    gets                   [{id, info}]: a task of each vCenter, as its /api Get Task says
    unknown_task           an id no vCenter has
    scenarios              the names to run, in order

The SDK is used as users use it: `create_vsphere_client(server=..., username=...,
password=..., session=requests_session)` (the vAPI JSON-RPC protocol, POST /api),
`com.vmware.cis_client.Session` and `Tasks` on the client's stub configuration, and
the runtime's REST mode (`get_requests_connector(msg_protocol='rest')`) for /rest.
Requests trust the CA through `requests.Session().verify`, nothing else.

Each scenario prints one JSON line to stdout: {"scenario": name, "ok": bool,
"detail": text}; a failure's detail names the exception the SDK raised, so that the
Rust test can show exactly what went wrong. Nothing else is printed to stdout.
"""

import datetime
import importlib.metadata
import json
import os
import sys
import time
import traceback

import requests

from com.vmware.cis.task_client import Status
from com.vmware.cis_client import Session, Tasks
from com.vmware.vapi.std.errors_client import (
    InvalidArgument,
    NotFound,
    ResourceInaccessible,
    ServiceUnavailable,
    Unauthenticated,
)
from com.vmware.vapi.std_client import DynamicID
from vmware.vapi.lib.connect import get_requests_connector
from vmware.vapi.security.client.security_context_filter import LegacySecurityContextFilter
from vmware.vapi.security.session import create_session_security_context
from vmware.vapi.security.user_password import create_user_password_security_context
from vmware.vapi.stdlib.client.factories import StubConfigurationFactory
from vmware.vapi.vsphere.client import create_vsphere_client

SPEC = {}


class Fail(Exception):
    """A scenario's expectation that did not hold."""


def check(condition, message):
    if not condition:
        raise Fail(message)


def describe(e):
    """An exception as `module.Class: message`, the message cut short."""
    text = str(e)
    if len(text) > 600:
        text = text[:600] + "..."
    return "%s.%s: %s" % (type(e).__module__, type(e).__name__, text)


def expect_raises(cls, call, what):
    """`call()` must raise `cls` (an SDK error class); anything else is a failure."""
    try:
        result = call()
    except cls as e:
        return e
    except Exception as e:  # noqa: BLE001 - the point is to name whatever came
        raise Fail("%s: expected %s, got %s" % (what, cls.__name__, describe(e)))
    raise Fail("%s: expected %s, got an answer: %s" % (what, cls.__name__, str(result)[:300]))


# --- connecting ---------------------------------------------------------------------


# Every answer the SDK's HTTP sessions received: (method, URL, status,
# Content-Encoding). requests decodes a compressed answer before the SDK reads it;
# this is how the scenarios see that it was compressed.
SEEN = []


def record(response, *args, **kwargs):
    SEEN.append(
        (
            response.request.method,
            response.url,
            response.status_code,
            response.headers.get("Content-Encoding"),
        )
    )


def http_session():
    """A requests session trusting the run's CA and nothing else (one per client:
    the SDK's client closes the session it was given when it is done). It sends
    requests' default `Accept-Encoding: gzip, deflate`."""
    s = requests.Session()
    s.verify = SPEC["ca"]
    s.hooks["response"].append(record)
    return s


def login(server=None, password=None):
    """`create_vsphere_client` with a user and password: the JSON-RPC log-in."""
    return create_vsphere_client(
        server=server or SPEC["server"],
        username=SPEC["user"],
        password=SPEC["password"] if password is None else password,
        session=http_session(),
    )


def api_session_id():
    """A session made over /api (POST /api/session, Basic auth), as a script that
    logged in with curl would hand to the SDK."""
    r = http_session().post(
        "https://%s/api/session" % SPEC["server"], auth=(SPEC["user"], SPEC["password"])
    )
    check(r.status_code == 201, "POST /api/session: %s %s" % (r.status_code, r.text[:300]))
    sid = r.json()
    check(isinstance(sid, str) and sid, "POST /api/session: not a session id: %r" % (sid,))
    return sid


def rest_config(security_context):
    """A stub configuration for the vAPI runtime's REST mode against the proxy's
    /rest, with `security_context` on every call (JSONRPC-NOTES.md section 8)."""
    connector = get_requests_connector(
        session=http_session(),
        msg_protocol="rest",
        url="https://%s/rest" % SPEC["server"],
        provider_filter_chain=[LegacySecurityContextFilter(security_context=security_context)],
    )
    return StubConfigurationFactory.new_std_configuration(connector)


def rest_user_config(password=None):
    return rest_config(
        create_user_password_security_context(
            SPEC["user"], SPEC["password"] if password is None else password
        )
    )


def rest_session_config(sid):
    return rest_config(create_session_security_context(sid))


# --- filters and tasks --------------------------------------------------------------


def filter_spec(d):
    """A Tasks.FilterSpec from the /api JSON form of a filter (sets as sets, in the
    order given: the SDK sends them in set-iteration order)."""
    if d is None:
        return None
    kw = {}
    for name in ("tasks", "services", "operations", "users"):
        if name in d:
            kw[name] = set(d[name])
    if "status" in d:
        kw["status"] = set(Status(s) for s in d["status"])
    if "targets" in d:
        kw["targets"] = [DynamicID(type=t["type"], id=t["id"]) for t in d["targets"]]
    return Tasks.FilterSpec(**kw)


def get_spec(d):
    if d is None:
        return None
    return Tasks.GetSpec(return_all=d.get("return_all"), exclude_result=d.get("exclude_result"))


def iso(value):
    """A date-time as the SDK gives it (naive, UTC) or as /api writes it, as one text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (value.microsecond // 1000)


def sdk_view(info):
    """The fields of an SDK `com.vmware.cis.task_client.Info` that are compared."""
    target = info.target
    progress = info.progress
    return {
        "service": info.service,
        "operation": info.operation,
        "status": str(info.status),
        "user": info.user,
        "parent": info.parent,
        "cancelable": info.cancelable,
        "target": None if target is None else {"type": target.type, "id": target.id},
        "description": {
            "id": info.description.id,
            "default_message": info.description.default_message,
            "args": list(info.description.args),
        },
        "progress": None
        if progress is None
        else {"total": progress.total, "completed": progress.completed},
        "start_time": iso(info.start_time),
        "end_time": iso(info.end_time),
        "has_result": info.result is not None,
        "has_error": info.error is not None,
    }


def api_view(info):
    """The same fields of a task as a vCenter's /api answers it."""
    progress = info.get("progress")
    description = info["description"]
    return {
        "service": info["service"],
        "operation": info["operation"],
        "status": info["status"],
        "user": info.get("user"),
        "parent": info.get("parent"),
        "cancelable": info["cancelable"],
        "target": info.get("target"),
        "description": {
            "id": description["id"],
            "default_message": description["default_message"],
            "args": description["args"],
        },
        "progress": None
        if progress is None
        else {"total": progress["total"], "completed": progress["completed"]},
        "start_time": iso(info.get("start_time")),
        "end_time": iso(info.get("end_time")),
        "has_result": "result" in info,
        "has_error": "error" in info,
    }


def differences(got, want):
    return ["%s: %r, expected %r" % (k, got.get(k), want[k]) for k in want if got.get(k) != want[k]]


def compare_task(task_id, info, expected, exclude_result=False):
    want = api_view(expected)
    if exclude_result:
        want["has_result"] = False
    diff = differences(sdk_view(info), want)
    check(not diff, "task %s differs: %s" % (task_id, "; ".join(diff)))


def compare_list(got, expected, exclude_result=False):
    """A List Tasks answer from the SDK (dict id -> Info) against the union of the
    simulators' answers: the same ids, each task's fields equal."""
    check(isinstance(got, dict), "not a map of tasks: %s" % type(got).__name__)
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    check(
        not missing and not extra,
        "%d tasks, expected %d; missing %d %s, unexpected %d %s"
        % (len(got), len(expected), len(missing), missing[:3], len(extra), extra[:3]),
    )
    for task_id, info in got.items():
        compare_task(task_id, info, expected[task_id], exclude_result)
    return "%d tasks equal to the simulators' union" % len(got)


def list_case(name):
    for case in SPEC["lists"]:
        if case["name"] == name:
            return case
    raise Fail("no list case named %r in the spec" % name)


def run_list(tasks, case):
    got = tasks.list(filter_spec(case["filter_spec"]), get_spec(case.get("result_spec")))
    exclude = bool((case.get("result_spec") or {}).get("exclude_result"))
    return compare_list(got, case["expected"], exclude)


def same_user(reported, login_name):
    """Who-am-I's user against the log-in name: `administrator@vsphere.local` as
    given, or vCenter's `VSPHERE.LOCAL\\Administrator` form of it."""
    if not isinstance(reported, str):
        return False
    if reported.lower() == login_name.lower():
        return True
    name, _, domain = login_name.partition("@")
    return reported.lower() == ("%s\\%s" % (domain, name)).lower()


def check_who_am_i(info):
    check(
        same_user(info.user, SPEC["user"]),
        "who-am-I user %r, expected %r" % (info.user, SPEC["user"]),
    )
    for field in ("created_time", "last_accessed_time"):
        value = getattr(info, field)
        check(isinstance(value, datetime.datetime), "who-am-I %s: %r" % (field, value))


# --- scenarios ----------------------------------------------------------------------

SCENARIOS = {}


def scenario(name):
    def register(fn):
        SCENARIOS[name] = fn
        return fn

    return register


@scenario("sdk_versions")
def sdk_versions():
    """The venv holds exactly the pinned set (a stale .venv-sdk shows here)."""
    here = os.path.dirname(os.path.abspath(__file__))
    wrong = []
    pins = 0
    with open(os.path.join(here, "requirements.txt")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, _, version = line.partition("==")
            pins += 1
            try:
                installed = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                installed = None
            if installed != version:
                wrong.append("%s %s, pinned %s" % (name, installed, version))
    check(pins > 0, "no pins read from requirements.txt")
    check(not wrong, "not the pinned versions (run bash tests/sdk/venv.sh): " + "; ".join(wrong))
    return "%d pinned packages installed" % pins


@scenario("tls_trust")
def tls_trust():
    """The proxy's certificate verifies against the run's CA, and against nothing
    else: requests' default trust (certifi) refuses it."""
    url = "https://%s/api/session" % SPEC["server"]
    r = http_session().get(url)
    default = requests.Session()
    e = expect_raises(requests.exceptions.SSLError, lambda: default.get(url), "default trust")
    check("CERTIFICATE_VERIFY_FAILED" in str(e), "default trust: %s" % describe(e))
    return "verified against the CA (GET /api/session: %s); refused by default trust" % (
        r.status_code
    )


@scenario("jsonrpc_login")
def jsonrpc_login():
    client = login()
    sid = client.get_session_id()
    check(isinstance(sid, str) and sid, "session id %r" % (sid,))
    return "session id of %d characters" % len(sid)


@scenario("jsonrpc_whoami")
def jsonrpc_whoami():
    client = login()
    info = Session(client._stub_config).get()
    check_who_am_i(info)
    return "user %s" % info.user


def jsonrpc_list(name):
    client = login()
    return run_list(Tasks(client._stub_config), list_case(name))


@scenario("jsonrpc_list_over_1000")
def jsonrpc_list_over_1000():
    client = login()
    case = SPEC["over_1000"]
    expect_raises(
        ResourceInaccessible,
        lambda: Tasks(client._stub_config).list(filter_spec(case["filter_spec"])),
        "list of %d tasks" % case["matching"],
    )
    return "ResourceInaccessible for %d matching tasks" % case["matching"]


@scenario("jsonrpc_list_no_filter")
def jsonrpc_list_no_filter():
    client = login()
    expect_raises(InvalidArgument, lambda: Tasks(client._stub_config).list(), "Tasks.list()")
    return "InvalidArgument"


def check_gets(tasks):
    for g in SPEC["gets"]:
        compare_task(g["id"], tasks.get(g["id"]), g["info"])
        info = tasks.get(g["id"], Tasks.GetSpec(exclude_result=True))
        compare_task(g["id"], info, g["info"], exclude_result=True)
    return "%d tasks, with and without their result" % len(SPEC["gets"])


@scenario("jsonrpc_get")
def jsonrpc_get():
    client = login()
    return check_gets(Tasks(client._stub_config))


@scenario("jsonrpc_get_unknown")
def jsonrpc_get_unknown():
    client = login()
    tasks = Tasks(client._stub_config)
    expect_raises(NotFound, lambda: tasks.get(SPEC["unknown_task"]), "get of an unknown id")
    return "NotFound"


@scenario("jsonrpc_bad_password")
def jsonrpc_bad_password():
    expect_raises(Unauthenticated, lambda: login(password=SPEC["password"] + "-wrong"), "log-in")
    return "Unauthenticated at log-in"


@scenario("jsonrpc_vcenter_down")
def jsonrpc_vcenter_down():
    client = login(server=SPEC["server_down"])
    case = SPEC["lists"][0]
    expect_raises(
        ServiceUnavailable,
        lambda: Tasks(client._stub_config).list(filter_spec(case["filter_spec"])),
        "list with a vCenter down",
    )
    return "ServiceUnavailable"


@scenario("jsonrpc_session_from_api")
def jsonrpc_session_from_api():
    sid = api_session_id()
    client = create_vsphere_client(server=SPEC["server"], session_id=sid, session=http_session())
    check(client.get_session_id() == sid, "the client does not use the given session")
    check_who_am_i(Session(client._stub_config).get())
    return "who-am-I and " + run_list(Tasks(client._stub_config), SPEC["lists"][0])


@scenario("jsonrpc_logout")
def jsonrpc_logout():
    client = login()
    config = client._stub_config
    Session(config).delete()
    expect_raises(Unauthenticated, lambda: Session(config).get(), "who-am-I after log-out")
    case = SPEC["lists"][0]
    expect_raises(
        Unauthenticated,
        lambda: Tasks(config).list(filter_spec(case["filter_spec"])),
        "list after log-out",
    )
    return "Unauthenticated after log-out"


@scenario("rest_session")
def rest_session():
    """REST mode: log-in (POST /rest/session), who-am-I, log-out, and the session is
    gone."""
    sid = Session(rest_user_config()).create()
    check(isinstance(sid, str) and sid, "session id %r" % (sid,))
    config = rest_session_config(sid)
    check_who_am_i(Session(config).get())
    Session(config).delete()
    expect_raises(Unauthenticated, lambda: Session(config).get(), "who-am-I after log-out")
    return "log-in, who-am-I, log-out"


def rest_login():
    """A stub configuration on a session the SDK's REST mode logged in
    (POST /rest/session with Basic auth)."""
    return rest_session_config(Session(rest_user_config()).create())


def rest_list(name):
    """REST mode List Tasks: GET /rest/cis/tasks with the filter as a JSON body."""
    return run_list(Tasks(rest_login()), list_case(name))


@scenario("rest_get")
def rest_get():
    """REST mode Get Task: GET /rest/cis/tasks/{id} with a JSON body."""
    return check_gets(Tasks(rest_login()))


def until_gzip(tasks, what):
    """Lists the first case until an answer comes gzip-compressed (the copies are
    made just after the first fetch), checking every answer against the union;
    returns how many lists it took."""
    case = SPEC["lists"][0]
    for attempt in range(1, 101):
        del SEEN[:]
        detail = run_list(tasks, case)
        encodings = [e for (_, url, _, e) in SEEN if "/session" not in url]
        if encodings and encodings[-1] == "gzip":
            return "%s: gzip answer on list %d, decoded by the SDK: %s" % (what, attempt, detail)
        time.sleep(0.05)
    raise Fail("%s: no gzip answer in 100 lists (Content-Encoding seen: %r)" % (what, SEEN))


@scenario("jsonrpc_gzip")
def jsonrpc_gzip():
    """JSON-RPC with requests' default Accept-Encoding: the answer is a gzip stream
    of three members (head, stored output, tail), and the SDK reads it whole."""
    client = login()  # kept: the SDK logs out when its client is collected
    return until_gzip(Tasks(client._stub_config), "JSON-RPC")


@scenario("rest_gzip")
def rest_gzip():
    """REST mode: the stored gzip copy, read by the SDK."""
    return until_gzip(Tasks(rest_login()), "REST")


def find(name):
    if name in SCENARIOS:
        return SCENARIOS[name]
    prefix, _, case = name.partition(":")
    if prefix == "jsonrpc_list" and case:
        return lambda: jsonrpc_list(case)
    if prefix == "rest_list" and case:
        return lambda: rest_list(case)
    return None


def main():
    with open(sys.argv[1]) as f:
        SPEC.update(json.load(f))
    for name in SPEC["scenarios"]:
        fn = find(name)
        try:
            if fn is None:
                raise Fail("no such scenario")
            ok, detail = True, fn()
        except Fail as e:
            ok, detail = False, str(e)
        except Exception as e:  # noqa: BLE001 - reported, and the next one runs
            ok, detail = False, describe(e)
            traceback.print_exc(file=sys.stderr)
        sys.stderr.write("scenario %s: %s\n" % (name, "ok" if ok else "FAILED"))
        sys.stderr.flush()
        print(json.dumps({"scenario": name, "ok": ok, "detail": detail}), flush=True)


if __name__ == "__main__":
    main()
