//! Connection id → shared connection state, sharded so sends to different connections
//! from different threads rarely touch the same lock.

use std::sync::Arc;

use parking_lot::Mutex;

use super::conn::ConnShared;
use super::event::ConnId;
use super::id_map::IdMap;

const SHARDS: usize = 64;

pub struct Registry {
    shards: Vec<Mutex<IdMap<Arc<ConnShared>>>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(IdMap::default())).collect(),
        }
    }

    fn shard(&self, id: ConnId) -> &Mutex<IdMap<Arc<ConnShared>>> {
        &self.shards[(id.0 as usize) % SHARDS]
    }

    pub fn insert(&self, conn: Arc<ConnShared>) {
        self.shard(conn.id).lock().insert(conn.id.0, conn);
    }

    pub fn get(&self, id: ConnId) -> Option<Arc<ConnShared>> {
        self.shard(id).lock().get(&id.0).cloned()
    }

    pub fn remove(&self, id: ConnId) {
        self.shard(id).lock().remove(&id.0);
    }

    /// A snapshot of every connection (for broadcast and shutdown).
    pub fn all(&self) -> Vec<Arc<ConnShared>> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(shard.lock().values().cloned());
        }
        out
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}
