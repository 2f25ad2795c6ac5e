//! The JetStream store and what instances share through it: the token store's behaviour
//! suite on JetStream KV, revocations every instance applies, sessions any instance
//! continues, published permissions, and (in [`cluster`]) a three-node nats-server cluster.

mod cluster;
mod instances;
mod permissions;

use std::sync::Arc;

use nats_callout::testing::store_suite::{Backend, SECRET, settings};
use nats_callout::tokens::refresh::RefreshService;
use nats_callout::tokens::store::{KvSettings, KvStore};

use crate::support::{EnvOptions, TestEnv};

/// A JetStream store on a real nats-server, reached with the service's credentials.
pub struct JetStreamBackend {
    env: TestEnv,
}

impl JetStreamBackend {
    pub async fn start() -> Self {
        JetStreamBackend {
            env: TestEnv::start(EnvOptions::shared()).await,
        }
    }

    pub async fn store(&self) -> KvStore {
        let client = nats_callout::app::connect(&self.env.config).await.unwrap();
        KvStore::new(client, kv_settings())
    }
}

/// The suite's lifetimes (absolute 250 s + tombstone 50 s) as bucket ages.
pub fn kv_settings() -> KvSettings {
    let s = settings();
    KvSettings {
        prefix: "suite".into(),
        replicas: 1,
        records_max_age: s.absolute + s.tombstone,
        revocations_max_age: std::time::Duration::from_secs(3600),
    }
}

#[async_trait::async_trait]
impl Backend for JetStreamBackend {
    async fn service(&self) -> RefreshService {
        RefreshService::new(Arc::new(self.store().await), SECRET, settings())
    }

    /// Two connections, two stores: two instances.
    async fn pair(&self) -> (Arc<RefreshService>, Arc<RefreshService>) {
        (Arc::new(self.service().await), Arc::new(self.service().await))
    }
}

/// The behaviour suite the redb store passes, on JetStream.
mod behaviour {
    use super::JetStreamBackend;
    nats_callout::testing::store_suite::run_suite!(JetStreamBackend::start().await);
}
