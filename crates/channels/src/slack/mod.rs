//! Slack (in progress).
