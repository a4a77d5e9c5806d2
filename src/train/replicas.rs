//! Data parallelism: a run's replicas, one per device, each on its own thread.
//!
//! Every replica holds a copy of the models (clones, so their parameters keep their ids),
//! computes its part of each global batch ([`BatchPart`](crate::data::BatchPart)), and before
//! every optimiser step the gradients are averaged across replicas by burn-collective's
//! all-reduce ([`Learner::step`](super::trainer::Learner::step)); every replica then applies the
//! same update, so the replicas stay equal and the run's numbers do not depend on the device
//! count. The logged values are averaged the same way, and after each step the replicas meet at
//! a [`Team`] gate where replica 0 — the one that logs, samples and checkpoints — says whether
//! to go on.
//!
//! burn-collective's local group is one per backend type in a process, so one multi-device run
//! trains at a time ([`Team::lock`]). A replica that fails wakes the others at once: the gate
//! reports it, and the all-reduces in flight are ended (burn-collective has no timeouts, so
//! without this the others would wait for it forever).

use std::sync::{Condvar, Mutex, MutexGuard};

use burn::collective::{self, CollectiveConfig, CollectiveError, PeerId, ReduceOperation};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::data::BatchPart;
use crate::error::{Error, Result};
use crate::nn::{freeze_forward_state, FrozenState};

/// The replicas of one run and the gate where they meet after each step.
pub(crate) struct Team {
    count: usize,
    gate: Mutex<Gate>,
    turn: Condvar,
}

/// Who has arrived at the gate in this round, and what replica 0 said.
struct Gate {
    arrived: usize,
    round: u64,
    go_on: bool,
    /// The first replica that failed.
    failed: Option<usize>,
}

impl Team {
    /// A team of `count` replicas.
    pub fn new(count: usize) -> Self {
        Self {
            count,
            gate: Mutex::new(Gate {
                arrived: 0,
                round: 0,
                go_on: true,
                failed: None,
            }),
            turn: Condvar::new(),
        }
    }

    /// How many replicas train.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Holds the process's one multi-device run (burn-collective keeps one group per backend).
    pub fn lock() -> MutexGuard<'static, ()> {
        static ONE_RUN: Mutex<()> = Mutex::new(());
        ONE_RUN
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends a step on replica `rank`: waits until every replica has arrived, and returns whether
    /// to go on, as replica 0 says (`go_on`; the others' is ignored). An error if a replica
    /// failed.
    pub fn agree(&self, rank: usize, go_on: bool) -> Result<bool> {
        let mut gate = self.gate();
        let round = gate.round;
        if rank == 0 {
            gate.go_on = go_on;
        }
        gate.arrived += 1;
        if gate.arrived == self.count {
            gate.arrived = 0;
            gate.round += 1;
            self.turn.notify_all();
        }
        while gate.round == round && gate.failed.is_none() {
            gate = self.turn.wait(gate).unwrap_or_else(|p| p.into_inner());
        }
        match gate.failed {
            Some(failed) => Err(stopped(failed)),
            None => Ok(gate.go_on),
        }
    }

    /// Replica `rank` has failed: wakes the replicas waiting at the gate and ends the
    /// all-reduces in flight on backend `B`, so that none waits for it.
    pub fn fail<B: Backend>(&self, rank: usize) {
        let mut gate = self.gate();
        if gate.failed.is_none() {
            gate.failed = Some(rank);
        }
        self.turn.notify_all();
        drop(gate);
        collective::reset_collective::<B>();
    }

    /// The replica that failed first, if one did.
    pub fn failed(&self) -> Option<usize> {
        self.gate().failed
    }
}

/// The error of a replica that stopped because replica `failed` did.
pub(crate) fn stopped(failed: usize) -> Error {
    Error::Replicas {
        reason: format!("stopped because replica {failed} failed"),
    }
}

/// Joins replica `rank` of `count` to burn-collective's group on backend `B` (the inner backend
/// of training: gradients live there); returns once all have joined.
pub(crate) fn join<B: Backend>(rank: usize, count: usize, device: &B::Device) -> Result<PeerId> {
    let peer = PeerId::from(rank);
    let config = CollectiveConfig::default().with_num_devices(count);
    collective::register::<B>(peer, device.clone(), config).map_err(|e| failed("join", e))?;
    Ok(peer)
}

/// Leaves the group (errors are ignored: the run is over either way).
pub(crate) fn leave<B: Backend>(peer: PeerId) {
    let _ = collective::finish_collective::<B>(peer);
}

/// The mean of `tensor` across the replicas (every replica calls it, in the same order).
pub(crate) fn mean<B: Backend, const D: usize>(
    peer: PeerId,
    tensor: Tensor<B, D>,
) -> Result<Tensor<B, D>> {
    let primitive = tensor.into_primitive().tensor();
    let mean = collective::all_reduce::<B>(peer, primitive, ReduceOperation::Mean)
        .map_err(|e| failed("average across replicas", e))?;
    Ok(Tensor::from_primitive(TensorPrimitive::Float(mean)))
}

/// burn-collective's error while doing `what`.
pub(crate) fn failed(what: &str, error: CollectiveError) -> Error {
    Error::Replicas {
        reason: format!("cannot {what}: {error:?}"),
    }
}

/// Device `rank` of a run that trains on `devices` from `first` on: the `rank`-th device of
/// `first`'s kind (GPU `first + rank`; on the CPU, every replica shares the one device).
pub(crate) fn nth_device<B: Backend>(first: &B::Device, rank: usize) -> Result<B::Device> {
    use burn::tensor::backend::{Device, DeviceId};
    let id = first.to_id();
    let index = usize::from(id.index_id) + rank;
    let index_id = u16::try_from(index).map_err(|_| {
        Error::invalid(
            "devices",
            format!(
                "device index {index} is past the largest one ({})",
                u16::MAX
            ),
        )
    })?;
    Ok(B::Device::from_id(DeviceId {
        type_id: id.type_id,
        index_id,
    }))
}

/// The parts of every batch one replica computes — its micro-batches, in order: parts
/// `first..first + count` of `of` ([`BatchPart`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parts {
    first: usize,
    count: usize,
    of: usize,
}

impl Parts {
    /// Replica `rank`'s parts when the batch is cut for `devices` replicas of `accumulate`
    /// micro-batches each.
    pub fn new(rank: usize, devices: usize, accumulate: usize) -> Self {
        Self {
            first: rank * accumulate,
            count: accumulate,
            of: devices * accumulate,
        }
    }

    /// How many micro-batches make one of this replica's optimiser steps.
    pub fn len(&self) -> usize {
        self.count
    }

    /// This replica's micro-batches of a step, in order. Every one after the first freezes the
    /// forward-pass state while it lives ([`freeze_forward_state`]), so a step updates it once
    /// however it is split, as one whole batch does.
    pub fn iter(&self) -> impl Iterator<Item = Micro> {
        let (first, of) = (self.first, self.of);
        (0..self.count).map(move |index| Micro {
            index,
            part: BatchPart {
                part: first + index,
                parts: of,
            },
            _frozen: (index > 0).then(freeze_forward_state),
        })
    }

    /// Micro-batch `i` of this replica's stream, numbered across batches (how a loop's
    /// prefetched stream counts): batch `i / len` and its part.
    pub fn locate(&self, i: usize) -> (usize, BatchPart) {
        let part = self.first + i % self.count;
        (
            i / self.count,
            BatchPart {
                part,
                parts: self.of,
            },
        )
    }
}

/// One of a replica's micro-batches in a step (made by [`Parts::iter`]).
pub(crate) struct Micro {
    /// Which of the step's micro-batches, `0..Parts::len()`.
    pub index: usize,
    /// The part of the batch it holds.
    pub part: BatchPart,
    _frozen: Option<FrozenState>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_opens_when_all_have_arrived_and_carries_replica_0s_word() {
        let team = Team::new(3);
        let said = std::thread::scope(|s| {
            let others: Vec<_> = (1..3)
                .map(|rank| {
                    s.spawn({
                        let team = &team;
                        move || team.agree(rank, true)
                    })
                })
                .collect();
            let first = team.agree(0, false).unwrap();
            let rest: Vec<bool> = others
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect();
            (first, rest)
        });
        assert_eq!(said, (false, vec![false, false]));
    }

    #[test]
    fn a_failed_replica_wakes_the_others_with_an_error_naming_it() {
        let _one = Team::lock(); // `fail` ends burn-collective's operations in flight
        let team = Team::new(3);
        std::thread::scope(|s| {
            let waiting = s.spawn(|| team.agree(1, true));
            team.fail::<crate::backend::Backend>(2);
            let err = waiting.join().unwrap().unwrap_err().to_string();
            assert!(err.contains("replica 2 failed"), "{err}");
        });
        assert_eq!(team.failed(), Some(2));
    }
}
