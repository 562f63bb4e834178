"""Scenario group 3 of `cargo xtask interop`: the OpenAI Python SDK against our local Responses
endpoint, with the seed's request (see openai_seed.py for the environment it reads).

  stream    The seed's request with `stream=True`: every event must be an instance of one of the
            SDK's typed `ResponseStreamEvent` models, re-validate from its own JSON, carry no
            field the model does not know, and have increasing `sequence_number`s; the first is
            `ResponseCreatedEvent`, the last `ResponseCompletedEvent`, whose response text is the
            dice answer.
  no-token  The seed's first (unauthenticated) request against the authenticated dice server:
            it must raise `openai.APIStatusError` with status 424 and the seed's error body.

Exit 0 and a one-line JSON summary on success, 1 and the reason on failure.
"""

import json
import os
import re
import sys
import typing

import openai
from openai import OpenAI
from openai.types.responses import ResponseCompletedEvent, ResponseCreatedEvent, ResponseStreamEvent

TIMEOUT_SECONDS = 60
DICE_ANSWER = re.compile(r"^You rolled (\d+) dice? and got the following results?: (.+)!$")
SEED_424_BODY = {
    "message": "Error retrieving tool list from MCP server: 'dice_server'. Http status code: 401 (Unauthorized)",
    "type": "external_connector_error",
    "param": "tools",
    "code": "http_error",
}


class ScenarioFailed(Exception):
    """A check did not hold."""


def seed_tool(url: str, token: str | None) -> dict:
    tool = {
        "type": "mcp",
        "server_label": "dice_server",
        "server_url": f"{url}/sse",
        "require_approval": "never",
    }
    if token is not None:
        tool["headers"] = {"Authorization": f"Bearer {token}"}
    return tool


def client() -> OpenAI:
    return OpenAI(base_url=os.environ["RESPONSES_BASE_URL"], timeout=TIMEOUT_SECONDS, max_retries=0)


def check_dice_answer(text: str) -> list[int]:
    match = DICE_ANSWER.match(text)
    if match is None:
        raise ScenarioFailed(f"not the dice answer: {text!r}")
    dice = [int(v) for v in re.findall(r"\d+", match.group(2))]
    if len(dice) != int(match.group(1)) or not all(1 <= d <= 6 for d in dice):
        raise ScenarioFailed(f"the dice in {text!r} do not match the count or lie outside 1..=6")
    return dice


def stream_event_models() -> tuple[type, ...]:
    union = typing.get_args(ResponseStreamEvent)[0]  # Annotated[Union[...], PropertyInfo]
    return typing.get_args(union)


def run_stream() -> dict:
    url = os.environ["DICE_SERVER_URL"]
    token = os.environ.get("DICE_SERVER_TOKEN")
    models = stream_event_models()
    stream = client().responses.create(
        model="gpt-4.1",
        tools=[seed_tool(url, token)],
        input="Roll a few dice!",
        stream=True,
    )
    events = []
    last_sequence = -1
    for event in stream:
        name = type(event).__name__
        if not isinstance(event, models):
            raise ScenarioFailed(f"event #{len(events)} is {name}, not a typed ResponseStreamEvent: {event!r}")
        literal = typing.get_args(type(event).model_fields["type"].annotation)
        if event.type not in literal:
            raise ScenarioFailed(f"{name} has type {event.type!r}, expected one of {literal}")
        if event.model_extra:
            raise ScenarioFailed(f"{name} carries fields its model does not know: {sorted(event.model_extra)}")
        # The SDK builds stream events leniently; validating the event's own JSON proves that
        # every field has the type the model declares.
        type(event).model_validate(event.to_dict())
        if event.sequence_number <= last_sequence:
            raise ScenarioFailed(f"{name} has sequence_number {event.sequence_number} after {last_sequence}")
        last_sequence = event.sequence_number
        events.append(event)
    if not events:
        raise ScenarioFailed("the stream carried no events")
    if not isinstance(events[0], ResponseCreatedEvent):
        raise ScenarioFailed(f"the first event is {type(events[0]).__name__}, not ResponseCreatedEvent")
    if not isinstance(events[-1], ResponseCompletedEvent):
        raise ScenarioFailed(f"the last event is {type(events[-1]).__name__}, not ResponseCompletedEvent")
    completed = events[-1].response
    if completed.status != "completed":
        raise ScenarioFailed(f"the completed response has status {completed.status!r}")
    dice = check_dice_answer(completed.output_text)
    return {
        "events": len(events),
        "types": sorted({e.type for e in events}),
        "output_text": completed.output_text,
        "dice": dice,
    }


def run_no_token() -> dict:
    url = os.environ["DICE_SERVER_URL"]
    try:
        resp = client().responses.create(
            model="gpt-4.1",
            tools=[seed_tool(url, None)],
            input="Roll a few dice!",
        )
    except openai.APIStatusError as e:
        if type(e) is not openai.APIStatusError:
            raise ScenarioFailed(f"raised {type(e).__name__}, expected APIStatusError itself") from e
        if e.status_code != 424:
            raise ScenarioFailed(f"status {e.status_code}, expected 424: {e}") from e
        if e.body != SEED_424_BODY:
            raise ScenarioFailed(f"error body {json.dumps(e.body)} != the seed's {json.dumps(SEED_424_BODY)}") from e
        return {"exception": type(e).__name__, "status_code": e.status_code, "body": e.body, "str": str(e)}
    raise ScenarioFailed(f"no exception; the response said {resp.output_text!r}")


SCENARIOS = {"stream": run_stream, "no-token": run_no_token}


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        print(f"usage: openai_checks.py {'|'.join(SCENARIOS)}", file=sys.stderr)
        return 2
    try:
        summary = SCENARIOS[sys.argv[1]]()
    except ScenarioFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - any other error is a failure too
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
