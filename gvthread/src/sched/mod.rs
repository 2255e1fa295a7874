//! The scheduler: worker roles, machines, run queues, park and wake.
//!
//! # Model
//!
//! gvthread follows Go's G/M/P split:
//!
//! * a **GVThread** (G) is a stack in a slot plus a state word;
//! * a **worker role** (P, [`worker::Worker`]) owns a local run queue and the
//!   right to run GVThreads; there are `num_workers` ordinary roles plus
//!   `num_low_priority_workers` roles that only run `Priority::Low`;
//! * a **machine** (M, [`machine::Machine`]) is an OS thread holding a role.
//!
//! Run queues: each ordinary role has a fixed ring ([`queue::LocalQueue`])
//! that its machine pushes to and pops from without locks; a global queue per
//! priority ([`inject::GlobalQueues`]) takes spawns from outside the runtime,
//! ring overflow, and non-Normal priorities. A worker looks for work in this
//! order: Critical, High, its local ring (every 61st time the global Normal
//! queue first), global Normal, global Low (when no dedicated low-priority
//! workers exist), then steals half of another worker's ring. Idle workers
//! sleep on a futex ([`idle`]).
//!
//! # Park and wake
//!
//! Every blocking primitive is built on one mechanism (see [`park`]): the
//! GVThread registers a waker that names (slot, generation) wherever it
//! waits, then parks. Parking switches away first and publishes `PARKED` only
//! once its registers are saved (the post-switch action of
//! [`machine`]); a wake that arrives before that sets `NOTIFIED`, which the
//! publish step sees and turns into an immediate re-queue. A wake whose
//! generation differs from the slot's is ignored.
//!
//! Rejected alternatives: setting a "blocked" flag before saving the context
//! (the original GVThread code: an early wake was lost, and a wake in between
//! resumed a stale context); always switching through the scheduler context
//! (twice the switches per yield); a global run queue only (contention).

pub(crate) mod idle;
pub(crate) mod homeq;
pub(crate) mod inject;
pub(crate) mod machine;
pub(crate) mod park;
pub(crate) mod queue;
pub(crate) mod schedule;
pub(crate) mod worker;
