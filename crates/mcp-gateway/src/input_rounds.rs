//! Input rounds: a child of an older revision asks its client during a call, a 2026-07-28
//! client answers by retrying the call.
//!
//! The child's call keeps running at the child. Its requests (`elicitation/create`,
//! `sampling/createMessage`, `roots/list`) become the call's questions ([`InputRounds`]);
//! once the child has asked and gone quiet for [`GATHER_WINDOW`], the round ends: the call
//! is parked ([`ParkedCalls`]) and the client gets an `InputRequiredResult` whose signed
//! `requestState` names the parked call and round. The client's retry with that state and
//! `inputResponses` takes the call back, answers the child's requests by key and waits
//! again for the call's result or its next round. A parked call nobody resumes within the
//! wait is cancelled at the child and its requests are answered with an error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_proto::client_features::{CreateMessageResult, ElicitResult, ListRootsResult};
use mcp_proto::input::META_INPUT_KEY;
use mcp_proto::jsonrpc::code;
use mcp_proto::stateless::{RESULT_INPUT_REQUIRED, RequestStateSigner, StateError};
use mcp_proto::types::{ClientCapabilities, method};
use mcp_proto::{BoxFuture, ErrorObject, Message, Outbound, RequestId, SendError};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, oneshot};

use crate::lock;
use crate::upstream::Outcome;

/// How long the child must stay quiet after a request before the round ends: requests it
/// sends together (several questions at once) go out in one `InputRequiredResult`.
pub const GATHER_WINDOW: Duration = Duration::from_millis(50);
/// Most unanswered requests of the child one call may hold.
pub const MAX_QUESTIONS: usize = 16;
/// Most bytes of request params one call's unanswered requests may hold.
pub const MAX_QUESTION_BYTES: usize = 1024 * 1024;
/// Longest question key taken from the child's request `_meta`.
const MAX_KEY_LEN: usize = 128;

/// The questions of one call and the answers its client gave.
#[derive(Default)]
pub(crate) struct InputRounds {
    state: Mutex<RoundsState>,
    asked: Notify,
    parked: AtomicBool,
}

#[derive(Default)]
struct RoundsState {
    /// The capabilities of the round's request.
    capabilities: ClientCapabilities,
    /// `inputResponses` of the round's request not used yet.
    given: Map<String, Value>,
    /// Questions for the client, unanswered.
    open: Vec<Question>,
    /// Questions the client cannot answer (it lacks the capability).
    refused: Vec<Question>,
    next_key: u64,
    /// Ends the call with this error at the end of the round.
    failure: Option<ErrorObject>,
    bytes: usize,
}

/// A request of the child, waiting for the client's answer.
struct Question {
    child_id: RequestId,
    key: String,
    method: String,
    params: Value,
    size: usize,
    answer: oneshot::Sender<Outcome>,
}

/// What became of a request of the child.
pub(crate) enum Asked {
    /// Answered at once (from the round's `inputResponses`, or refused).
    Answered(Outcome),
    /// The client answers in a later round.
    Waiting(oneshot::Receiver<Outcome>),
}

/// How a round ended.
#[derive(Debug)]
pub(crate) enum RoundEnd {
    /// The call fails with this error.
    Failed(ErrorObject),
    /// The client must answer these (`inputRequests`).
    Input(Map<String, Value>),
}

impl InputRounds {
    /// The rounds of a call whose first request declared `capabilities` and brought `given`.
    pub(crate) fn new(capabilities: ClientCapabilities, given: Map<String, Value>) -> Self {
        Self {
            state: Mutex::new(RoundsState {
                capabilities,
                given,
                ..RoundsState::default()
            }),
            ..Self::default()
        }
    }

    /// Whether the call waits for a client's retry.
    pub(crate) fn is_parked(&self) -> bool {
        self.parked.load(Ordering::Relaxed)
    }

    pub(crate) fn set_parked(&self, parked: bool) {
        self.parked.store(parked, Ordering::Relaxed);
    }

    /// A request of the child during the call.
    pub(crate) fn ask(&self, child_id: RequestId, method: &str, params: Option<Value>) -> Asked {
        let mut state = lock(&self.state);
        let (key, params) = state.key_for(params);
        if let Some(answer) = state.given.remove(&key) {
            let outcome = check_answer(method, &key, &answer).map(|()| answer);
            if let Err(error) = &outcome {
                state.failure.get_or_insert_with(|| error.clone());
                drop(state);
                self.asked.notify_waiters();
            }
            return Asked::Answered(outcome);
        }
        let size = params.to_string().len();
        let held = state.open.len() + state.refused.len();
        if held >= MAX_QUESTIONS || state.bytes + size > MAX_QUESTION_BYTES {
            let error = ErrorObject::internal(format!(
                "the MCP server asked for more input than the gateway holds for one call \
                 ({MAX_QUESTIONS} requests, {MAX_QUESTION_BYTES} bytes)"
            ));
            state.failure.get_or_insert_with(|| error.clone());
            drop(state);
            self.asked.notify_waiters();
            return Asked::Answered(Err(error));
        }
        let (answer, receiver) = oneshot::channel();
        let refused = missing_capability(method, &state.capabilities).is_some();
        let question = Question {
            child_id,
            key,
            method: method.to_owned(),
            params,
            size,
            answer,
        };
        state.bytes += size;
        if refused {
            state.refused.push(question);
        } else {
            state.open.push(question);
        }
        drop(state);
        self.asked.notify_waiters();
        Asked::Waiting(receiver)
    }

    /// The child cancelled one of its requests: the client is no longer asked.
    pub(crate) fn withdraw(&self, child_id: &RequestId) {
        let mut state = lock(&self.state);
        let state = &mut *state;
        for list in [&mut state.open, &mut state.refused] {
            if let Some(i) = list.iter().position(|q| &q.child_id == child_id) {
                let question = list.remove(i);
                state.bytes -= question.size;
            }
        }
    }

    /// Resolves once the round can end: the child asked something (or the call must fail)
    /// and has been quiet for [`GATHER_WINDOW`].
    pub(crate) async fn settled(&self) {
        loop {
            let notified = self.asked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (pending, failed) = {
                let state = lock(&self.state);
                let pending = !state.open.is_empty() || !state.refused.is_empty();
                (pending, state.failure.is_some())
            };
            if failed {
                return;
            }
            if !pending {
                notified.await;
                continue;
            }
            if tokio::time::timeout(GATHER_WINDOW, notified).await.is_err() {
                return;
            }
        }
    }

    /// Ends the round: the error the call fails with, or the questions for the client
    /// (requests the client cannot answer are then refused at the child).
    pub(crate) fn end_round(&self) -> RoundEnd {
        let mut state = lock(&self.state);
        if let Some(error) = state.failure.take() {
            return RoundEnd::Failed(error);
        }
        if state.open.is_empty() {
            let mut required = Map::new();
            for question in &state.refused {
                if let Some((name, value)) =
                    missing_capability(&question.method, &state.capabilities)
                {
                    required.insert(name.to_owned(), value);
                }
            }
            let names: Vec<&str> = required.keys().map(String::as_str).collect();
            let error = ErrorObject::new(
                code::MISSING_REQUIRED_CLIENT_CAPABILITY,
                format!("Missing required client capability: {}", names.join(", ")),
            )
            .with_data(json!({ "requiredCapabilities": required }));
            return RoundEnd::Failed(error);
        }
        for question in std::mem::take(&mut state.refused) {
            state.bytes -= question.size;
            let _ = question.answer.send(Err(ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!(
                    "Method not found: the client does not support {}",
                    question.method
                ),
            )));
        }
        let requests = state
            .open
            .iter()
            .map(|q| {
                let request = json!({"method": q.method, "params": q.params});
                (q.key.clone(), request)
            })
            .collect();
        RoundEnd::Input(requests)
    }

    /// A retry: the capabilities of its request, and its `inputResponses` answer the
    /// questions with their keys (answers to nothing asked yet wait for later questions).
    pub(crate) fn resume(
        &self,
        capabilities: ClientCapabilities,
        mut given: Map<String, Value>,
    ) -> Result<(), ErrorObject> {
        let mut state = lock(&self.state);
        state.capabilities = capabilities;
        let mut answered = Vec::new();
        for question in &state.open {
            if let Some(answer) = given.remove(&question.key) {
                check_answer(&question.method, &question.key, &answer)?;
                answered.push((question.child_id.clone(), answer));
            }
        }
        for (child_id, answer) in answered {
            if let Some(i) = state.open.iter().position(|q| q.child_id == child_id) {
                let question = state.open.remove(i);
                state.bytes -= question.size;
                let _ = question.answer.send(Ok(answer));
            }
        }
        state.given = given;
        Ok(())
    }

    /// Answers every question still waiting with `error` (the call ends).
    pub(crate) fn fail_open(&self, error: &ErrorObject) {
        let mut state = lock(&self.state);
        let open = std::mem::take(&mut state.open);
        let refused = std::mem::take(&mut state.refused);
        state.bytes = 0;
        for question in open.into_iter().chain(refused) {
            let _ = question.answer.send(Err(error.clone()));
        }
    }

    /// Bytes held by unanswered questions.
    fn bytes(&self) -> usize {
        lock(&self.state).bytes
    }
}

impl RoundsState {
    /// The question's key (the child's own when its `_meta` names an unused one, else
    /// `input_<n>`) and its params without that `_meta` entry.
    fn key_for(&mut self, params: Option<Value>) -> (String, Value) {
        let mut params = params.unwrap_or_else(|| json!({}));
        let mut named = None;
        if let Some(Value::Object(meta)) = params.get_mut("_meta") {
            if let Some(Value::String(key)) = meta.remove(META_INPUT_KEY) {
                named = Some(key);
            }
            if meta.is_empty()
                && let Value::Object(map) = &mut params
            {
                map.remove("_meta");
            }
        }
        let taken = |k: &str| self.open.iter().chain(&self.refused).any(|q| q.key == k);
        let key = match named {
            Some(key) if !key.is_empty() && key.len() <= MAX_KEY_LEN && !taken(&key) => key,
            _ => loop {
                let key = format!("input_{}", self.next_key);
                self.next_key += 1;
                if !taken(&key) {
                    break key;
                }
            },
        };
        (key, params)
    }
}

/// The capability a client needs to answer `method`, when `capabilities` lack it: its name
/// and its `requiredCapabilities` entry.
fn missing_capability(
    method: &str,
    capabilities: &ClientCapabilities,
) -> Option<(&'static str, Value)> {
    let missing = match method {
        method::SAMPLING_CREATE_MESSAGE => capabilities.sampling.is_none().then_some("sampling"),
        method::ELICITATION_CREATE => capabilities.elicitation.is_none().then_some("elicitation"),
        method::ROOTS_LIST => capabilities.roots.is_none().then_some("roots"),
        _ => None,
    };
    missing.map(|name| (name, json!({})))
}

/// Checks that the client's answer under `key` has the shape of `method`'s result.
fn check_answer(method: &str, key: &str, answer: &Value) -> Result<(), ErrorObject> {
    let valid = match method {
        method::SAMPLING_CREATE_MESSAGE => {
            serde_json::from_value::<CreateMessageResult>(answer.clone()).is_ok()
        }
        method::ELICITATION_CREATE => serde_json::from_value::<ElicitResult>(answer.clone())
            .is_ok_and(|r| matches!(r.action.as_str(), "accept" | "decline" | "cancel")),
        method::ROOTS_LIST => serde_json::from_value::<ListRootsResult>(answer.clone()).is_ok(),
        _ => answer.is_object(),
    };
    if valid {
        Ok(())
    } else {
        Err(ErrorObject::invalid_params(format!(
            "inputResponses.{key} is not a valid {method} result"
        )))
    }
}

/// The outbound of a call that may span rounds: each round's request stream in turn (and
/// its progress token), nothing while the call is parked.
#[derive(Default)]
pub(crate) struct RoundOutbound {
    target: Mutex<Option<RoundTarget>>,
}

#[derive(Clone)]
struct RoundTarget {
    outbound: Arc<dyn Outbound>,
    progress_token: Option<Value>,
}

impl RoundOutbound {
    /// Sends to a round's stream from now on; progress goes out under its token (none
    /// without one).
    pub(crate) fn attach(&self, outbound: Arc<dyn Outbound>, progress_token: Option<Value>) {
        *lock(&self.target) = Some(RoundTarget {
            outbound,
            progress_token,
        });
    }

    /// Drops what the child sends until the next round.
    pub(crate) fn detach(&self) {
        *lock(&self.target) = None;
    }
}

impl Outbound for RoundOutbound {
    fn send(&self, mut message: Message) -> BoxFuture<'_, Result<(), SendError>> {
        let Some(target) = lock(&self.target).clone() else {
            return Box::pin(async { Ok(()) });
        };
        if let Message::Notification(n) = &mut message
            && n.method == "notifications/progress"
        {
            match (&target.progress_token, &mut n.params) {
                (Some(token), Some(params)) => params["progressToken"] = token.clone(),
                _ => return Box::pin(async { Ok(()) }),
            }
        }
        Box::pin(async move { target.outbound.send(message).await })
    }
}

/// A forwarded call's answer, still to come.
pub(crate) type CallFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>;

static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

/// A 2026-07-28 call that may need input: the forwarded call and its rounds.
pub(crate) struct InputCall {
    pub(crate) id: String,
    pub(crate) future: CallFuture,
    pub(crate) rounds: Arc<InputRounds>,
    pub(crate) outbound: Arc<RoundOutbound>,
    round: u64,
    /// The authenticated subject of the client, when there is one.
    owner: Option<Arc<str>>,
}

impl InputCall {
    pub(crate) fn new(
        future: CallFuture,
        rounds: Arc<InputRounds>,
        outbound: Arc<RoundOutbound>,
        owner: Option<Arc<str>>,
    ) -> Self {
        Self {
            // Unique in this process; the signed `requestState` keeps clients from forging one.
            id: format!("c{}", NEXT_CALL.fetch_add(1, Ordering::Relaxed)),
            future,
            rounds,
            outbound,
            round: 0,
            owner,
        }
    }
}

/// Bounds of the parked calls.
#[derive(Debug, Clone)]
pub(crate) struct ParkLimits {
    /// Most parked calls.
    pub max_calls: usize,
    /// Most parked calls of one authenticated subject (or of all anonymous clients).
    pub max_per_client: usize,
    /// Most bytes of questions all parked calls hold.
    pub max_bytes: usize,
    /// How long a parked call waits for its client.
    pub wait: Duration,
}

/// The calls waiting for their clients' input, by id.
pub(crate) struct ParkedCalls {
    signer: RequestStateSigner,
    calls: Mutex<HashMap<String, InputCall>>,
    limits: ParkLimits,
}

impl std::fmt::Debug for ParkedCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParkedCalls")
            .field("parked", &lock(&self.calls).len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ParkedCalls {
    pub(crate) fn new(limits: ParkLimits) -> Self {
        let ttl = limits.wait.as_secs().max(1);
        Self {
            signer: RequestStateSigner::random().ttl_secs(ttl),
            calls: Mutex::new(HashMap::new()),
            limits,
        }
    }

    /// How many calls wait for input.
    pub(crate) fn len(&self) -> usize {
        lock(&self.calls).len()
    }

    /// Parks a call until its client retries (or the wait ends); the `requestState` for the
    /// client. A call over the bounds ends (cancelled at the child) with the error to answer.
    pub(crate) fn park(
        self: &Arc<Self>,
        mut call: InputCall,
        binding: &str,
    ) -> Result<String, ErrorObject> {
        let mut calls = lock(&self.calls);
        let same_owner = calls.values().filter(|c| c.owner == call.owner).count();
        let bytes: usize = calls.values().map(|c| c.rounds.bytes()).sum();
        let refusal = if calls.len() >= self.limits.max_calls {
            Some(format!("{} calls", self.limits.max_calls))
        } else if same_owner >= self.limits.max_per_client {
            Some(format!("{} calls per client", self.limits.max_per_client))
        } else if bytes + call.rounds.bytes() > self.limits.max_bytes {
            Some(format!("{} bytes of requests", self.limits.max_bytes))
        } else {
            None
        };
        if let Some(limit) = refusal {
            let error = ErrorObject::internal(format!(
                "too many calls wait for client input at the gateway (limit {limit}); \
                 retry later"
            ));
            drop(calls);
            call.rounds.fail_open(&error);
            return Err(error);
        }
        call.round += 1;
        call.rounds.set_parked(true);
        call.outbound.detach();
        let mut state = Map::new();
        state.insert("call".into(), json!(call.id));
        state.insert("round".into(), json!(call.round));
        let token = self.signer.seal(state, binding);
        let (id, round) = (call.id.clone(), call.round);
        calls.insert(id.clone(), call);
        drop(calls);
        let parked = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(parked.limits.wait).await;
            parked.expire(&id, round);
        });
        Ok(token)
    }

    /// Takes back the call a retry's `requestState` names.
    pub(crate) fn resume(&self, token: &str, binding: &str) -> Result<InputCall, ErrorObject> {
        let state = self.signer.open(token, binding).map_err(state_error)?;
        let id = state.get("call").and_then(Value::as_str).unwrap_or("");
        let round = state.get("round").and_then(Value::as_u64).unwrap_or(0);
        let mut calls = lock(&self.calls);
        match calls.get(id) {
            Some(call) if call.round == round => {}
            Some(_) => {
                return Err(ErrorObject::invalid_params(
                    "Invalid requestState: it is from an earlier round of this call",
                ));
            }
            None => {
                return Err(ErrorObject::invalid_params(
                    "Invalid requestState: its call no longer waits for input \
                     (answered already, or the wait ended)",
                ));
            }
        }
        let call = calls
            .remove(id)
            .ok_or_else(|| ErrorObject::internal("call vanished"))?;
        call.rounds.set_parked(false);
        Ok(call)
    }

    /// Ends a call still parked in `round`: its requests at the child get an error, and
    /// dropping it cancels it there.
    fn expire(&self, id: &str, round: u64) {
        let expired = {
            let mut calls = lock(&self.calls);
            match calls.get(id) {
                Some(call) if call.round == round => calls.remove(id),
                _ => None,
            }
        };
        if let Some(call) = expired {
            tracing::debug!(call = %id, "a call waiting for client input expired");
            call.rounds.fail_open(&ErrorObject::new(
                code::REQUEST_TIMEOUT,
                format!(
                    "the client did not answer within {} s",
                    self.limits.wait.as_secs_f64()
                ),
            ));
        }
    }
}

fn state_error(error: StateError) -> ErrorObject {
    let hint = match error {
        // Also what another gateway process's state looks like: each signs with its own key.
        StateError::Tampered => {
            " (or issued by another gateway process: a retry must reach the one that issued it)"
        }
        _ => "",
    };
    ErrorObject::invalid_params(format!("Invalid requestState: {error}{hint}"))
}

/// `InputRequiredResult` for the questions of a round.
pub(crate) fn input_required(requests: Map<String, Value>, request_state: String) -> Value {
    json!({
        "resultType": RESULT_INPUT_REQUIRED,
        "inputRequests": requests,
        "requestState": request_state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(value: Value) -> ClientCapabilities {
        serde_json::from_value(value).unwrap()
    }

    fn id(n: i64) -> RequestId {
        RequestId::from(n)
    }

    fn elicit(key: Option<&str>) -> Option<Value> {
        let mut params = json!({"message": "Name?", "requestedSchema": {"type": "object"}});
        if let Some(key) = key {
            params["_meta"] = json!({ META_INPUT_KEY: key });
        }
        Some(params)
    }

    fn waiting(asked: Asked) -> oneshot::Receiver<Outcome> {
        match asked {
            Asked::Waiting(rx) => rx,
            Asked::Answered(outcome) => panic!("answered at once: {outcome:?}"),
        }
    }

    fn requests(end: RoundEnd) -> Map<String, Value> {
        match end {
            RoundEnd::Input(requests) => requests,
            RoundEnd::Failed(error) => panic!("failed: {error:?}"),
        }
    }

    #[test]
    fn questions_keep_the_childs_key_else_get_one_of_their_own() {
        let rounds = InputRounds::new(caps(json!({"elicitation": {}})), Map::new());
        let _a = waiting(rounds.ask(id(1), "elicitation/create", elicit(Some("name"))));
        // Taken already, so renamed; no key at all; a key too long to keep.
        let _b = waiting(rounds.ask(id(2), "elicitation/create", elicit(Some("name"))));
        let _c = waiting(rounds.ask(id(3), "elicitation/create", elicit(None)));
        let long = "k".repeat(MAX_KEY_LEN + 1);
        let _d = waiting(rounds.ask(id(4), "elicitation/create", elicit(Some(&long))));
        let requests = requests(rounds.end_round());
        let keys: Vec<&str> = requests.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4);
        for key in ["name", "input_0", "input_1", "input_2"] {
            assert!(keys.contains(&key), "{keys:?}");
        }
        // The gateway's `_meta` entry does not reach the client.
        assert_eq!(
            requests["name"],
            json!({"method": "elicitation/create", "params": {"message": "Name?", "requestedSchema": {"type": "object"}}})
        );
    }

    #[tokio::test]
    async fn answers_given_up_front_or_in_a_retry_reach_the_child_by_key() {
        let given = json!({"name": {"action": "accept", "content": {"n": "A"}}});
        let Value::Object(given) = given else {
            unreachable!()
        };
        let rounds = InputRounds::new(caps(json!({"elicitation": {}})), given);
        match rounds.ask(id(1), "elicitation/create", elicit(Some("name"))) {
            Asked::Answered(Ok(answer)) => assert_eq!(answer["content"]["n"], "A"),
            _ => panic!("not answered from the given responses"),
        }
        let rx = waiting(rounds.ask(id(2), "elicitation/create", elicit(Some("more"))));
        let _other = waiting(rounds.ask(id(3), "elicitation/create", elicit(Some("rest"))));
        assert_eq!(requests(rounds.end_round()).len(), 2);
        let Value::Object(retry) = json!({"more": {"action": "decline"}}) else {
            unreachable!()
        };
        rounds
            .resume(caps(json!({"elicitation": {}})), retry)
            .unwrap();
        assert_eq!(rx.await.unwrap().unwrap(), json!({"action": "decline"}));
        // Unanswered, it is asked again in the next round.
        let again = requests(rounds.end_round());
        assert_eq!(again.keys().collect::<Vec<_>>(), ["rest"]);
    }

    #[test]
    fn malformed_answers_fail_the_call_with_invalid_params() {
        let rounds = InputRounds::new(caps(json!({"sampling": {}})), Map::new());
        let _rx = waiting(rounds.ask(id(1), "sampling/createMessage", Some(json!({}))));
        let Value::Object(bad) = json!({"input_0": {"role": "assistant"}}) else {
            unreachable!()
        };
        let error = rounds
            .resume(caps(json!({"sampling": {}})), bad)
            .unwrap_err();
        assert_eq!(error.code, code::INVALID_PARAMS);
        assert_eq!(
            error.message,
            "Invalid params: inputResponses.input_0 is not a valid sampling/createMessage result"
        );
        let Value::Object(given) = json!({"input_1": 5}) else {
            unreachable!()
        };
        let rounds = InputRounds::new(caps(json!({"roots": {}})), given);
        let _ = rounds.ask(id(1), "roots/list", None);
        let _ = rounds.ask(id(2), "roots/list", None);
        match rounds.end_round() {
            RoundEnd::Failed(error) => assert_eq!(
                error.message,
                "Invalid params: inputResponses.input_1 is not a valid roots/list result"
            ),
            RoundEnd::Input(r) => panic!("not failed: {r:?}"),
        }
    }

    #[tokio::test]
    async fn questions_the_client_cannot_answer_are_refused_or_fail_the_call() {
        let rounds = InputRounds::new(caps(json!({"sampling": {}})), Map::new());
        let refused = waiting(rounds.ask(id(1), "elicitation/create", elicit(None)));
        let _open = waiting(rounds.ask(id(2), "sampling/createMessage", Some(json!({}))));
        let requests = requests(rounds.end_round());
        assert_eq!(requests.keys().collect::<Vec<_>>(), ["input_1"]);
        let error = refused.await.unwrap().unwrap_err();
        assert_eq!(error.code, code::METHOD_NOT_FOUND);
        assert_eq!(
            error.message,
            "Method not found: the client does not support elicitation/create"
        );

        let rounds = InputRounds::new(ClientCapabilities::default(), Map::new());
        let _a = waiting(rounds.ask(id(1), "roots/list", None));
        let _b = waiting(rounds.ask(id(2), "sampling/createMessage", Some(json!({}))));
        match rounds.end_round() {
            RoundEnd::Failed(error) => {
                assert_eq!(error.code, code::MISSING_REQUIRED_CLIENT_CAPABILITY);
                assert_eq!(
                    error.message,
                    "Missing required client capability: roots, sampling"
                );
                assert_eq!(
                    error.data,
                    Some(json!({"requiredCapabilities": {"roots": {}, "sampling": {}}}))
                );
            }
            RoundEnd::Input(r) => panic!("not failed: {r:?}"),
        }
    }

    #[tokio::test]
    async fn a_question_the_child_withdraws_is_not_asked_again() {
        let rounds = InputRounds::new(caps(json!({"roots": {}})), Map::new());
        let withdrawn = waiting(rounds.ask(id(1), "roots/list", None));
        let _kept = waiting(rounds.ask(id(2), "roots/list", None));
        rounds.withdraw(&id(1));
        assert!(
            withdrawn.await.is_err(),
            "a withdrawn question gets no answer"
        );
        let requests = requests(rounds.end_round());
        assert_eq!(requests.keys().collect::<Vec<_>>(), ["input_1"]);
        assert_eq!(rounds.bytes(), "{}".len());
    }

    #[test]
    fn a_call_holds_a_bounded_number_of_questions() {
        let rounds = InputRounds::new(caps(json!({"roots": {}})), Map::new());
        let mut held = Vec::new();
        for n in 0..MAX_QUESTIONS {
            held.push(waiting(rounds.ask(id(n as i64), "roots/list", None)));
        }
        match rounds.ask(id(99), "roots/list", None) {
            Asked::Answered(Err(error)) => assert_eq!(error.code, code::INTERNAL_ERROR),
            _ => panic!("over the bound, yet held"),
        }
        assert!(matches!(rounds.end_round(), RoundEnd::Failed(_)));
        let huge = Some(json!({"message": "x".repeat(MAX_QUESTION_BYTES)}));
        let rounds = InputRounds::new(caps(json!({"elicitation": {}})), Map::new());
        assert!(matches!(
            rounds.ask(id(1), "elicitation/create", huge),
            Asked::Answered(Err(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_ends_once_the_child_went_quiet() {
        let rounds = Arc::new(InputRounds::new(caps(json!({"roots": {}})), Map::new()));
        let start = tokio::time::Instant::now();
        let asker = {
            let rounds = Arc::clone(&rounds);
            tokio::spawn(async move {
                let a = waiting(rounds.ask(id(1), "roots/list", None));
                tokio::time::sleep(GATHER_WINDOW / 2).await;
                let b = waiting(rounds.ask(id(2), "roots/list", None));
                (a, b)
            })
        };
        rounds.settled().await;
        // Quiet for a whole window after the second question.
        assert!(start.elapsed() >= GATHER_WINDOW / 2 + GATHER_WINDOW);
        let _held = asker.await.unwrap();
        assert_eq!(requests(rounds.end_round()).len(), 2);
    }

    #[derive(Default)]
    struct Capture(Mutex<Vec<Message>>);

    impl Outbound for Capture {
        fn send(&self, message: Message) -> BoxFuture<'_, Result<(), SendError>> {
            lock(&self.0).push(message);
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn progress_goes_to_the_current_round_under_its_token() {
        let outbound = RoundOutbound::default();
        let progress = |n: u64| {
            Message::notification(
                "notifications/progress",
                Some(json!({"progressToken": "first", "progress": n})),
            )
        };
        outbound.send(progress(0)).await.unwrap();
        let round = Arc::new(Capture::default());
        outbound.attach(round.clone(), Some(json!(42)));
        outbound.send(progress(1)).await.unwrap();
        outbound
            .send(Message::notification("notifications/message", None))
            .await
            .unwrap();
        outbound.detach();
        outbound.send(progress(2)).await.unwrap();
        let quiet = Arc::new(Capture::default());
        outbound.attach(quiet.clone(), None);
        outbound.send(progress(3)).await.unwrap();
        let sent: Vec<Value> = lock(&round.0)
            .iter()
            .map(|m| serde_json::to_value(m).unwrap())
            .collect();
        assert_eq!(sent.len(), 2);
        assert_eq!(
            sent[0]["params"],
            json!({"progressToken": 42, "progress": 1})
        );
        assert_eq!(sent[1]["method"], "notifications/message");
        assert!(lock(&quiet.0).is_empty());
    }

    fn input_call() -> InputCall {
        let rounds = Arc::new(InputRounds::new(ClientCapabilities::default(), Map::new()));
        let future: CallFuture = Box::pin(std::future::pending());
        InputCall::new(future, rounds, Arc::default(), None)
    }

    fn limits(max_calls: usize, wait: Duration) -> ParkLimits {
        ParkLimits {
            max_calls,
            max_per_client: max_calls,
            max_bytes: 1024,
            wait,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn parked_calls_resume_once_per_round_and_expire() {
        let parked = Arc::new(ParkedCalls::new(limits(1, Duration::from_secs(10))));
        let token = parked.park(input_call(), "b").unwrap();
        assert_eq!(parked.len(), 1);
        let over = parked.park(input_call(), "b").unwrap_err();
        assert_eq!(
            over.message,
            "Internal error: too many calls wait for client input at the gateway (limit 1 calls); retry later"
        );
        assert_eq!(
            parked.resume(&token, "other").err().unwrap().message,
            "Invalid params: Invalid requestState: requestState belongs to a different request"
        );
        let call = parked.resume(&token, "b").unwrap();
        assert!(!call.rounds.is_parked());
        assert!(parked.resume(&token, "b").is_err());
        let next = parked.park(call, "b").unwrap();
        assert_ne!(next, token);
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(parked.len(), 0);
        assert!(parked.resume(&next, "b").is_err());
    }
}
