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
//! # Home roles
//!
//! A GVThread that has started runs only on the machines of the role where it
//! first ran (its *home*, recorded in its state word). Each machine serves one
//! role for life, and a role's machines run GVThreads one at a time. This is
//! a soundness rule: LLVM keeps a thread-local's address across calls, and a
//! GVThread's stack may hold `!Send` handles to its OS thread's data; a
//! GVThread resumed on an unrelated OS thread could use the first thread's
//! data while that thread does too. Within one role, only one machine runs
//! user code at any time, so such data is never used by two threads at once.
//! Unstarted GVThreads move freely (stealing, global queues): load balance is
//! decided at the first run. `SchedulerConfig::free_migration` (unsafe) turns
//! the rule off.
//!
//! Run queues: each ordinary role has a fixed ring ([`queue::LocalQueue`]) of
//! unstarted GVThreads that its machine pushes to and pops from without locks
//! and that others steal from; a global queue per priority
//! ([`inject::GlobalQueues`]) takes unstarted GVThreads from outside the
//! runtime, ring overflow, and non-Normal priorities; and each role has home
//! queues ([`homeq::HomeQueue`]) of the started GVThreads bound to it, which
//! any thread pushes to without a lock or an allocation. A worker looks for
//! work in this order: Critical, High, `runnext`, its home queue and ring in
//! turn (every 61st time the global and preempted queues first), global
//! Normal, its frozen and preempted GVThreads, Low, then steals half of
//! another worker's ring. Idle workers sleep on a futex ([`idle`]). A
//! GVThread that used up its time slice goes ahead of all but urgent work
//! once its role gave each GVThread sharing it as much time
//! ([`fair_share`]). The common decision (a GVThread in the role's
//! [`runnext`], nothing urgent or due) reads one word, the role's
//! [`attention`] bits, instead of every queue that goes first.
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
//! Rejected alternatives: free migration of started GVThreads (unsound for
//! thread-bound state, kept as an unsafe opt-in); a home OS thread instead
//! of a home role (a frozen CPU hog would hold up everything started on its
//! thread); setting a "blocked" flag before saving the context
//! (the original GVThread code: an early wake was lost, and a wake in between
//! resumed a stale context); always switching through the scheduler context
//! (twice the switches per yield); a global run queue only (contention).

pub(crate) mod attention;
pub(crate) mod fair_share;
pub(crate) mod homeq;
pub(crate) mod idle;
pub(crate) mod inject;
pub(crate) mod machine;
pub(crate) mod park;
pub(crate) mod queue;
pub(crate) mod runnext;
pub(crate) mod schedule;
pub(crate) mod worker;
