//! Faults in user code (sources, transforms, sinks, dead-letter outlets,
//! acknowledgement receivers): caught, reported, never a lost record.

use std::fmt;

use serde::Serialize;

/// Which piece of user code failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "index")]
pub enum FaultyTask {
    /// The source of this index (in the order given to `start`).
    Source(usize),
    /// The transform (profile).
    Transform,
    /// The sink.
    Sink,
    /// The dead-letter outlet.
    DeadLetterOutlet,
    /// A source's acknowledgement receiver.
    Acknowledgement,
    /// The limit shared with other processes.
    SharedLimit,
    /// A processor task that did not end by the drain deadline: user code
    /// it called blocked its thread.
    Stuck,
    /// A processor task ended by a panic that escaped every guard: a bug of
    /// sluice's, reported rather than hidden.
    Processor,
}

impl fmt::Display for FaultyTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultyTask::Source(index) => write!(f, "source {index}"),
            FaultyTask::Transform => f.write_str("transform"),
            FaultyTask::Sink => f.write_str("sink"),
            FaultyTask::DeadLetterOutlet => f.write_str("dead-letter outlet"),
            FaultyTask::Acknowledgement => f.write_str("acknowledgement receiver"),
            FaultyTask::SharedLimit => f.write_str("shared limit"),
            FaultyTask::Stuck => f.write_str("stuck task"),
            FaultyTask::Processor => f.write_str("processor task"),
        }
    }
}

/// A failure of user code that the processor caught.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskFailure {
    /// What failed.
    pub task: FaultyTask,
    /// The panic message, or what was observed.
    pub message: String,
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.task, self.message)
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-text panic payload")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_is_named_in_words() {
        let names = [
            (FaultyTask::Source(2), "source 2"),
            (FaultyTask::Transform, "transform"),
            (FaultyTask::Sink, "sink"),
            (FaultyTask::DeadLetterOutlet, "dead-letter outlet"),
            (FaultyTask::Acknowledgement, "acknowledgement receiver"),
            (FaultyTask::SharedLimit, "shared limit"),
            (FaultyTask::Stuck, "stuck task"),
            (FaultyTask::Processor, "processor task"),
        ];
        for (task, name) in names {
            assert_eq!(task.to_string(), name);
        }
        let failure = TaskFailure {
            task: FaultyTask::SharedLimit,
            message: "boom".into(),
        };
        assert_eq!(failure.to_string(), "shared limit failed: boom");
    }
}
