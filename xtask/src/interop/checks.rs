//! Checks on what the peers print: our `interop_client`'s JSON report, the seed script's dice
//! answer, `jwt_tool verify`'s identity. Pure functions, so that they are tested here.

use anyhow::{Context, bail, ensure};
use serde_json::Value;

/// How many dice every scenario rolls.
pub const N_DICE: usize = 3;

/// Checks dice values: exactly `count` integers in 1..=6.
pub fn check_dice(values: &Value, count: usize) -> anyhow::Result<Vec<u8>> {
    let Some(items) = values.as_array() else {
        bail!("expected a list of {count} dice, got {values}");
    };
    ensure!(
        items.len() == count,
        "expected {count} dice, got {} ({values})",
        items.len()
    );
    items
        .iter()
        .map(|item| match item.as_u64() {
            Some(v @ 1..=6) => Ok(v as u8),
            _ => bail!("{item} is not a die value in 1..=6 ({values})"),
        })
        .collect()
}

/// Checks the JSON line `interop_client` prints: the expected transport, a `roll_dice` tool,
/// and a successful call whose `structuredContent` is `{"result": [3 dice]}` and whose one
/// text block carries the same list. Returns a short description for the PASS line.
pub fn check_interop_client_report(stdout: &str, transport: &str) -> anyhow::Result<String> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .context("interop_client printed nothing")?;
    let report: Value = serde_json::from_str(line)
        .with_context(|| format!("interop_client printed no JSON: {line}"))?;
    ensure!(
        report["transport"] == transport,
        "transport {} (expected {transport:?})",
        report["transport"]
    );
    let tools = report["tools"]
        .as_array()
        .context("the report has no tools list")?;
    ensure!(
        tools.iter().any(|t| t == "roll_dice"),
        "tools/list has no roll_dice: {}",
        report["tools"]
    );
    let result = &report["result"];
    ensure!(
        result["isError"] != true,
        "roll_dice returned an error: {result}"
    );
    let structured = result["structuredContent"]
        .as_object()
        .with_context(|| format!("no structuredContent object in {result}"))?;
    ensure!(
        structured.len() == 1 && structured.contains_key("result"),
        "structuredContent is not {{\"result\": [...]}}: {}",
        result["structuredContent"]
    );
    let dice = check_dice(&structured["result"], N_DICE)?;
    let texts: Vec<&str> = result["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let text_dice: Option<Vec<u8>> = match texts.as_slice() {
        [text] => serde_json::from_str(text).ok(),
        _ => None,
    };
    ensure!(
        text_dice.as_deref() == Some(dice.as_slice()),
        "the text content {texts:?} does not carry the dice {dice:?}"
    );
    Ok(format!(
        "{} over {transport}, protocol {}, dice {dice:?}",
        report["server_info"]["name"]
            .as_str()
            .unwrap_or("(unnamed server)"),
        report["protocol_version"].as_str().unwrap_or("?"),
    ))
}

/// Checks the seed script's output: its last line is the dice answer, "You rolled 3 dice and got
/// the following results: 6, 4, and 2!" (or "You rolled 1 die and got the following result:
/// 5!"), naming as many dice as it says, each in 1..=6. Returns the dice.
pub fn check_dice_answer(stdout: &str) -> anyhow::Result<Vec<u8>> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .context("the script printed nothing")?
        .trim();
    let parsed = line.strip_prefix("You rolled ").and_then(|rest| {
        let (count, rest) = rest.split_once(' ')?;
        let list = rest
            .strip_prefix("dice and got the following results: ")
            .or_else(|| rest.strip_prefix("die and got the following result: "))?
            .strip_suffix('!')?;
        Some((count, list))
    });
    let Some((count, list)) = parsed else {
        bail!("not the dice answer: {line:?}");
    };
    let count: usize = count
        .parse()
        .with_context(|| format!("not a dice count in {line:?}"))?;
    let dice = list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|word| !word.is_empty() && *word != "and")
        .map(|word| match word.parse::<u8>() {
            Ok(v @ 1..=6) => Ok(v),
            _ => bail!("{word:?} is not a die value in 1..=6 ({line:?})"),
        })
        .collect::<anyhow::Result<Vec<u8>>>()?;
    ensure!(
        dice.len() == count,
        "the answer says {count} dice but lists {}: {line:?}",
        dice.len()
    );
    Ok(dice)
}

/// Dice the local Responses endpoint's deterministic model asks for when the prompt is the
/// guide's "Roll a few dice!" (`roll_dice({"n_dice":3})`).
pub const SEED_DICE: usize = 3;

/// Checks the guide's script answer from our local endpoint: the dice answer with exactly
/// [`SEED_DICE`] dice. Returns the dice.
pub fn check_seed_answer(stdout: &str) -> anyhow::Result<Vec<u8>> {
    let dice = check_dice_answer(stdout)?;
    ensure!(
        dice.len() == SEED_DICE,
        "the model asked for {SEED_DICE} dice but the answer has {}: {dice:?}",
        dice.len()
    );
    Ok(dice)
}

/// Checks `jwt_tool verify`'s JSON line: accepted, with the expected subject.
pub fn check_verified_identity(stdout: &str, subject: &str) -> anyhow::Result<String> {
    let identity: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("jwt_tool printed no JSON: {stdout}"))?;
    ensure!(identity["accepted"] == true, "not accepted: {identity}");
    ensure!(
        identity["subject"] == subject,
        "subject {} (expected {subject:?})",
        identity["subject"]
    );
    Ok(format!("accepted, sub {subject:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(transport: &str, result: Value) -> String {
        json!({
            "transport": transport,
            "protocol_version": "2025-11-25",
            "server_info": {"name": "Dice Roller", "version": "4.2.3"},
            "tools": ["roll_dice"],
            "result": result,
        })
        .to_string()
    }

    fn good_result() -> Value {
        json!({
            "content": [{"type": "text", "text": "[1,5,5]"}],
            "structuredContent": {"result": [1, 5, 5]},
            "isError": false,
        })
    }

    #[test]
    fn dice_must_be_three_values_in_range() {
        assert_eq!(check_dice(&json!([1, 6, 3]), 3).unwrap(), vec![1, 6, 3]);
        assert_eq!(
            check_dice(&json!([1, 2]), 3).unwrap_err().to_string(),
            "expected 3 dice, got 2 ([1,2])"
        );
        assert_eq!(
            check_dice(&json!([0, 2, 3]), 3).unwrap_err().to_string(),
            "0 is not a die value in 1..=6 ([0,2,3])"
        );
        assert_eq!(
            check_dice(&json!([7, 2, 3]), 3).unwrap_err().to_string(),
            "7 is not a die value in 1..=6 ([7,2,3])"
        );
        assert_eq!(
            check_dice(&json!({"result": []}), 3)
                .unwrap_err()
                .to_string(),
            "expected a list of 3 dice, got {\"result\":[]}"
        );
    }

    #[test]
    fn a_good_client_report_passes() {
        let line = format!("noise\n{}\n", report("sse", good_result()));
        assert_eq!(
            check_interop_client_report(&line, "sse").unwrap(),
            "Dice Roller over sse, protocol 2025-11-25, dice [1, 5, 5]"
        );
    }

    #[test]
    fn client_reports_with_a_wrong_detail_fail() {
        let sse = report("sse", good_result());
        assert_eq!(
            check_interop_client_report(&sse, "streamable")
                .unwrap_err()
                .to_string(),
            "transport \"sse\" (expected \"streamable\")"
        );
        let error = report(
            "sse",
            json!({"content": [{"type": "text", "text": "boom"}], "isError": true}),
        );
        assert!(
            check_interop_client_report(&error, "sse")
                .unwrap_err()
                .to_string()
                .starts_with("roll_dice returned an error:")
        );
        let unwrapped = report(
            "sse",
            json!({"content": [{"type": "text", "text": "[1,5,5]"}], "structuredContent": {"dice": [1, 5, 5]}}),
        );
        assert_eq!(
            check_interop_client_report(&unwrapped, "sse")
                .unwrap_err()
                .to_string(),
            "structuredContent is not {\"result\": [...]}: {\"dice\":[1,5,5]}"
        );
        let mismatch = report(
            "sse",
            json!({"content": [{"type": "text", "text": "[1,5,4]"}], "structuredContent": {"result": [1, 5, 5]}}),
        );
        assert_eq!(
            check_interop_client_report(&mismatch, "sse")
                .unwrap_err()
                .to_string(),
            "the text content [\"[1,5,4]\"] does not carry the dice [1, 5, 5]"
        );
        assert_eq!(
            check_interop_client_report("", "sse")
                .unwrap_err()
                .to_string(),
            "interop_client printed nothing"
        );
    }

    #[test]
    fn the_seed_answer_parses() {
        assert_eq!(
            check_dice_answer("You rolled 3 dice and got the following results: 6, 4, and 2!\n")
                .unwrap(),
            vec![6, 4, 2]
        );
        assert_eq!(
            check_dice_answer("You rolled 2 dice and got the following results: 5 and 1!").unwrap(),
            vec![5, 1]
        );
        assert_eq!(
            check_dice_answer("You rolled 1 die and got the following result: 5!").unwrap(),
            vec![5]
        );
    }

    #[test]
    fn wrong_answers_are_refused() {
        assert_eq!(
            check_dice_answer("I cannot roll dice.")
                .unwrap_err()
                .to_string(),
            "not the dice answer: \"I cannot roll dice.\""
        );
        assert_eq!(
            check_dice_answer("You rolled 3 dice and got the following results: 6 and 2!")
                .unwrap_err()
                .to_string(),
            "the answer says 3 dice but lists 2: \"You rolled 3 dice and got the following results: 6 and 2!\""
        );
        assert_eq!(
            check_dice_answer("You rolled 3 dice and got the following results: 6, 9, and 2!")
                .unwrap_err()
                .to_string(),
            "\"9\" is not a die value in 1..=6 (\"You rolled 3 dice and got the following results: 6, 9, and 2!\")"
        );
        assert_eq!(
            check_dice_answer("").unwrap_err().to_string(),
            "the script printed nothing"
        );
    }

    #[test]
    fn the_seed_answer_has_the_dice_the_model_asked_for() {
        let three = "You rolled 3 dice and got the following results: 6, 4, and 2!";
        assert_eq!(check_seed_answer(three).unwrap(), vec![6, 4, 2]);
        let four = "You rolled 4 dice and got the following results: 6, 4, 1, and 2!";
        assert_eq!(
            check_seed_answer(four).unwrap_err().to_string(),
            "the model asked for 3 dice but the answer has 4: [6, 4, 1, 2]"
        );
    }

    #[test]
    fn verified_identities_name_the_subject() {
        let ok = r#"{"accepted":true,"subject":"fastmcp-user","scopes":[]}"#;
        assert_eq!(
            check_verified_identity(ok, "fastmcp-user").unwrap(),
            "accepted, sub \"fastmcp-user\""
        );
        assert_eq!(
            check_verified_identity(ok, "dev-user")
                .unwrap_err()
                .to_string(),
            "subject \"fastmcp-user\" (expected \"dev-user\")"
        );
        assert!(check_verified_identity("rejected", "x").is_err());
    }
}
