//! What to start as the child MCP server, and with which environment.

use std::ffi::OsString;
use std::time::Duration;

use mcp_stdio::StdioCommand;

use crate::Error;

/// Variables every child gets from the gateway's environment unless told otherwise: what
/// `npx`/`uvx`-style launchers need to find their interpreter and cache. Nothing else of the
/// gateway's environment (tokens, keys) reaches the child.
pub const DEFAULT_PASSED_ENV: [&str; 2] = ["PATH", "HOME"];

/// The child MCP server: a [`StdioCommand`] (program, arguments, bounds) and the gateway's
/// rules for the environment it gets.
///
/// The child starts with an empty environment plus [`DEFAULT_PASSED_ENV`], the variables
/// named with [`ChildCommand::pass_env`] (copied from the gateway's environment when set) and
/// those set with [`ChildCommand::env`].
///
/// ```
/// let command = mcp_gateway::ChildCommand::new("dice_server")
///     .arg("--stdio")
///     .env("RUST_LOG", "warn")
///     .pass_env("LANG");
/// assert_eq!(command.name(), "dice_server");
/// assert_eq!(command.environment().iter().find(|(k, _)| k == "RUST_LOG").map(|(_, v)| v.as_str()), Some("warn"));
/// ```
#[derive(Debug, Clone)]
pub struct ChildCommand {
    /// Program, arguments, close grace and line bound; its environment is set at start.
    command: StdioCommand,
    set: Vec<(String, String)>,
    passed: Vec<String>,
    name: Option<String>,
}

impl ChildCommand {
    /// Starts `program` (looked up in `PATH`).
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            command: StdioCommand::new(program),
            set: Vec::new(),
            passed: DEFAULT_PASSED_ENV.iter().map(|s| (*s).to_owned()).collect(),
            name: None,
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.command = self.command.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = A>, A: Into<OsString>>(mut self, args: I) -> Self {
        self.command = self.command.args(args);
        self
    }

    /// Sets a variable in the child's environment.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set.push((key.into(), value.into()));
        self
    }

    /// Sets a variable from a `KEY=VALUE` assignment (as given to `--env`).
    pub fn env_assignment(self, assignment: &str) -> Result<Self, Error> {
        match assignment.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok(self.env(key, value)),
            _ => Err(Error::InvalidEnv(assignment.to_owned())),
        }
    }

    /// Copies a variable of the gateway's environment to the child, when it is set.
    pub fn pass_env(mut self, name: impl Into<String>) -> Self {
        self.passed.push(name.into());
        self
    }

    /// The prefix of the child's stderr lines in the gateway's log (default: the program's
    /// file name).
    pub fn name_as(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Time the child gets to exit after its stdin closes before it is killed. Default 2 s.
    pub fn close_grace(mut self, grace: Duration) -> Self {
        self.command = self.command.close_grace(grace);
        self
    }

    /// Bound on one message from the child. Default 4 MiB.
    pub fn max_line_bytes(mut self, limit: usize) -> Self {
        self.command = self.command.max_line_bytes(limit);
        self
    }

    /// The name the child's log lines carry.
    pub fn name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let program = self.command.program();
        match program.rsplit_once('/') {
            Some((_, file)) if !file.is_empty() => file.to_owned(),
            _ => program.to_owned(),
        }
    }

    /// The child's whole environment, as it will be started now.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        for name in &self.passed {
            if let Ok(value) = std::env::var(name) {
                env.retain(|(k, _)| k != name);
                env.push((name.clone(), value));
            }
        }
        for (key, value) in &self.set {
            env.retain(|(k, _)| k != key);
            env.push((key.clone(), value.clone()));
        }
        env
    }

    /// The stdio command that starts the child: cleared environment, stderr captured.
    pub(crate) fn stdio_command(&self) -> StdioCommand {
        let mut command = self.command.clone().env_clear().capture_stderr();
        for (key, value) in self.environment() {
            command = command.env(key, value);
        }
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_need_a_key_and_an_equals_sign() {
        let command = ChildCommand::new("x").env_assignment("A=b=c").unwrap();
        let env = command.environment();
        assert!(env.contains(&("A".to_owned(), "b=c".to_owned())));
        assert!(matches!(
            ChildCommand::new("x").env_assignment("NOEQUALS"),
            Err(Error::InvalidEnv(s)) if s == "NOEQUALS"
        ));
        assert!(matches!(
            ChildCommand::new("x").env_assignment("=v"),
            Err(Error::InvalidEnv(_))
        ));
    }

    #[test]
    fn only_named_variables_are_passed_and_set_ones_win() {
        // PATH is in the test's environment; CARGO_PKG_NAME is set by cargo for tests but
        // not named, so it stays out.
        let command = ChildCommand::new("x").env("PATH", "/only/here");
        let env = command.environment();
        assert_eq!(
            env.iter().filter(|(k, _)| k == "PATH").collect::<Vec<_>>(),
            vec![&("PATH".to_owned(), "/only/here".to_owned())]
        );
        assert!(env.iter().all(|(k, _)| k != "CARGO_PKG_NAME"));
        let passed = ChildCommand::new("x")
            .pass_env("CARGO_PKG_NAME")
            .environment();
        assert!(passed.contains(&("CARGO_PKG_NAME".to_owned(), "mcp-gateway".to_owned())));
    }

    #[test]
    fn the_name_is_the_program_file_name_unless_set() {
        assert_eq!(ChildCommand::new("/usr/bin/srv").name(), "srv");
        assert_eq!(ChildCommand::new("srv").name_as("files").name(), "files");
    }
}
