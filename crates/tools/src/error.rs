//! Typed tool errors. Every variant renders as a sentence the model can act on; the agent loop
//! turns an `Err` into a tool result with `isError: true` (see [`ToolError::into_output`]).

use crate::output::ToolOutput;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The model called a tool that is not registered.
    #[error("Tool \"{0}\" does not exist. Use one of the tools listed in this request.")]
    UnknownTool(String),
    /// Tool policy does not allow this tool for this agent/session.
    #[error("Tool \"{0}\" is not allowed by the tool policy for this session.")]
    NotAllowed(String),
    /// Arguments did not match the tool's JSON schema (or a semantic rule of the tool).
    #[error("Invalid arguments for {tool}: {message}")]
    InvalidArgs { tool: String, message: String },
    /// A path was refused by workspace confinement.
    #[error("{0}")]
    PathDenied(String),
    /// A network destination was refused by the SSRF guard.
    #[error("{0}")]
    Blocked(String),
    /// Exec security or an approval decision refused the command.
    #[error("{0}")]
    Denied(String),
    /// A file or resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A deadline passed.
    #[error("{0}")]
    Timeout(String),
    /// The call was cancelled (run aborted).
    #[error("Tool call cancelled.")]
    Cancelled,
    /// A capability this call needs is not available here (host trait missing, sandbox unusable).
    #[error("{0}")]
    Unavailable(String),
    /// The tool ran and failed.
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    pub fn invalid(tool: &str, message: impl Into<String>) -> Self {
        Self::InvalidArgs {
            tool: tool.to_owned(),
            message: message.into(),
        }
    }

    /// Stable machine-readable kind (goes into `details.errorKind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownTool(_) => "unknown_tool",
            Self::NotAllowed(_) => "not_allowed",
            Self::InvalidArgs { .. } => "invalid_args",
            Self::PathDenied(_) => "path_denied",
            Self::Blocked(_) => "blocked",
            Self::Denied(_) => "denied",
            Self::NotFound(_) => "not_found",
            Self::Timeout(_) => "timeout",
            Self::Cancelled => "cancelled",
            Self::Unavailable(_) => "unavailable",
            Self::Failed(_) => "failed",
        }
    }

    /// The tool result the model sees for this error.
    pub fn into_output(self) -> ToolOutput {
        let kind = self.kind();
        let text = self.to_string();
        ToolOutput::error(text.clone()).with_details(serde_json::json!({
            "status": "error",
            "errorKind": kind,
            "error": text,
        }))
    }

    pub(crate) fn io(context: &str, err: &std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::NotFound {
            Self::NotFound(format!("{context}: not found"))
        } else {
            Self::Failed(format!("{context}: {err}"))
        }
    }
}
