//! A simulated disk for crash and power-loss tests of the redb engine.
//!
//! [`SimDisk`] models one file with an OS page cache in front of stable
//! storage. Writes land in the cache and are logged as pending; `sync_data`
//! makes them stable. [`SimDisk::crash`] models a crash of the process: the
//! cache survives. [`SimDisk::power_loss`] models a power cut: only stable
//! data survives, plus, if asked, a random subset of the pending writes, in
//! the way a drive may have written some of them back on its own.
//! [`SimDisk::fail_after_writes`] stops the disk in the middle of a later
//! commit, to be followed by either kind of failure.
//!
//! Both kinds of failure fence the database that was running: its later
//! writes fail, as they would if the process were gone, so that dropping it
//! cannot write a clean shutdown behind the simulation's back. Open the disk
//! again with [`Db::open_sim`] to see what survived.

use std::io;
use std::sync::{Arc, Mutex};

use redb::StorageBackend;

use crate::db::Db;
use crate::engine::lock;
use crate::error::Result;
use crate::redb_adapter::{GatedBackend, RedbDb};

/// What survives a simulated power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerLoss {
    /// Only what was synced.
    DropUnsynced,
    /// What was synced, plus each unsynced operation with probability 1/2,
    /// replayed in order; `seed` makes the choice reproducible.
    KeepRandomSubset {
        /// Seed of the choice.
        seed: u64,
    },
}

/// An operation that reached the page cache but not stable storage.
#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct DiskState {
    /// What processes read: stable storage plus the page cache.
    cached: Vec<u8>,
    /// What survives a power loss.
    stable: Vec<u8>,
    /// Operations in `cached` but not in `stable`, oldest first.
    pending: Vec<Pending>,
    /// Backends opened before the last failure are dead.
    generation: u64,
    /// Writes left before the disk stops, if armed.
    writes_before_failure: Option<u64>,
    /// The armed failure happened: every backend is dead until `crash` or
    /// `power_loss`.
    failed: bool,
    syncs: u64,
}

impl DiskState {
    fn fence(&mut self) {
        self.generation += 1;
        self.failed = false;
        self.writes_before_failure = None;
    }
}

fn apply(image: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::SetLen(len) => image.resize(to_usize(*len), 0),
        Pending::Write { offset, data } => {
            let start = to_usize(*offset);
            let end = start + data.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[start..end].copy_from_slice(data);
        }
    }
}

fn to_usize(n: u64) -> usize {
    // The simulated file lives in memory, so its offsets fit in usize.
    usize::try_from(n).expect("invariant: simulated disk offsets fit in memory")
}

/// A simulated disk holding one redb database. Cloning gives another handle
/// on the same disk.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    /// Simulates a crash of the process: every write that reached the OS
    /// survives, synced or not. Databases opened before are fenced, and a
    /// failure armed by [`Self::fail_after_writes`] is reset.
    pub fn crash(&self) {
        lock(&self.state).fence();
    }

    /// Simulates a power loss: only synced data survives, plus unsynced
    /// operations as chosen by `mode`. Databases opened before are fenced,
    /// and a failure armed by [`Self::fail_after_writes`] is reset.
    pub fn power_loss(&self, mode: PowerLoss) {
        let mut s = lock(&self.state);
        s.fence();
        let pending = std::mem::take(&mut s.pending);
        if let PowerLoss::KeepRandomSubset { seed } = mode {
            let mut rng = seed ^ 0x9e37_79b9_7f4a_7c15;
            for op in &pending {
                // xorshift64*: enough to pick a reproducible subset.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                if rng & 1 == 1 {
                    apply(&mut s.stable, op);
                }
            }
        }
        s.cached = s.stable.clone();
    }

    /// Arms a failure in the middle of later work: after `n` more writes
    /// succeed, the next write and every later operation fail, as if the
    /// process died or the power went out at that point. Follow it with
    /// [`Self::crash`] or [`Self::power_loss`] to choose which.
    pub fn fail_after_writes(&self, n: u64) {
        lock(&self.state).writes_before_failure = Some(n);
    }

    /// Number of `sync_data` calls that reached the disk.
    pub fn sync_count(&self) -> u64 {
        lock(&self.state).syncs
    }

    /// Number of operations written but not yet synced.
    pub fn unsynced_ops(&self) -> usize {
        lock(&self.state).pending.len()
    }

    fn backend(&self) -> SimBackend {
        SimBackend {
            generation: lock(&self.state).generation,
            state: self.state.clone(),
        }
    }
}

impl Db {
    /// Opens (creating if empty) a redb database on a simulated disk, with
    /// the same durability logic as [`Db::open`] for the given `fsync`.
    pub fn open_sim(disk: &SimDisk, fsync: bool) -> Result<Db> {
        let engine = RedbDb::with_backend(GatedBackend::new(disk.backend(), fsync))?;
        Ok(Db::from_engine(Arc::new(engine)))
    }
}

/// One open of the simulated disk.
#[derive(Debug)]
struct SimBackend {
    state: Arc<Mutex<DiskState>>,
    generation: u64,
}

impl SimBackend {
    fn live(&self) -> io::Result<std::sync::MutexGuard<'_, DiskState>> {
        let s = lock(&self.state);
        if s.generation != self.generation || s.failed {
            return Err(io::Error::other(
                "simulated disk: the process crashed or lost power",
            ));
        }
        Ok(s)
    }
}

impl StorageBackend for SimBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.live()?.cached.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let s = self.live()?;
        let start = to_usize(offset);
        let src = s.cached.get(start..start + out.len()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "simulated disk: read past the end",
            )
        })?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.live()?;
        let op = Pending::SetLen(len);
        apply(&mut s.cached, &op);
        s.pending.push(op);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.live()?;
        let pending = std::mem::take(&mut s.pending);
        for op in &pending {
            apply(&mut s.stable, op);
        }
        s.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.live()?;
        if let Some(left) = s.writes_before_failure {
            if left == 0 {
                s.failed = true;
                return Err(io::Error::other("simulated disk: armed failure"));
            }
            s.writes_before_failure = Some(left - 1);
        }
        let op = Pending::Write {
            offset,
            data: data.to_vec(),
        };
        apply(&mut s.cached, &op);
        s.pending.push(op);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_model_keeps_what_it_should() {
        let disk = SimDisk::new();
        let b = disk.backend();
        b.write(0, b"abcd").expect("write");
        b.sync_data().expect("sync");
        b.write(2, b"XY").expect("write");
        assert_eq!(disk.unsynced_ops(), 1);

        disk.crash();
        assert!(b.write(0, b"z").is_err(), "a crashed process cannot write");
        let b = disk.backend();
        let mut buf = [0; 4];
        b.read(0, &mut buf).expect("read");
        assert_eq!(&buf, b"abXY", "a crash keeps the page cache");

        disk.power_loss(PowerLoss::DropUnsynced);
        let b = disk.backend();
        b.read(0, &mut buf).expect("read");
        assert_eq!(&buf, b"abcd", "a power loss keeps only synced data");
        assert_eq!(disk.sync_count(), 1);
    }

    #[test]
    fn armed_failure_fails_later_operations() {
        let disk = SimDisk::new();
        let b = disk.backend();
        disk.fail_after_writes(1);
        b.write(0, b"a").expect("first write passes");
        assert!(b.write(1, b"b").is_err());
        assert!(b.read(0, &mut [0]).is_err());
        disk.power_loss(PowerLoss::KeepRandomSubset { seed: 1 });
        assert!(disk.backend().len().is_ok());
    }
}
