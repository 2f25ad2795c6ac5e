//! The rooms' store suite the redb store passes, on JetStream: instances following the
//! bucket, and a crash between the writes of a deletion cut out by hand.

use std::sync::Arc;

use nats_callout::rooms::store::{KvRooms, RoomStore};
use nats_callout::testing::rooms_suite::{Instance, RoomsBackend, service};
use tokio_util::sync::CancellationToken;

use crate::support::{EnvOptions, TestEnv};

pub struct KvRoomsBackend {
    env: TestEnv,
}

impl KvRoomsBackend {
    pub async fn start() -> Self {
        KvRoomsBackend {
            env: TestEnv::start(EnvOptions::shared()).await,
        }
    }
}

#[async_trait::async_trait]
impl RoomsBackend for KvRoomsBackend {
    async fn instance(&self) -> Instance {
        let client = nats_callout::app::connect(&self.env.config).await.unwrap();
        let kv = Arc::new(KvRooms::new(client, "suite", 1));
        let rooms = service(kv.clone(), true);
        let stop = CancellationToken::new();
        let (tx, mut loaded) = tokio::sync::watch::channel(false);
        let (store, index, s) = (kv.clone(), rooms.clone(), stop.clone());
        tokio::spawn(async move { store.follow(index.index(), tx, s).await });
        loaded.wait_for(|l| *l).await.unwrap();
        Instance {
            rooms,
            store: kv as Arc<dyn RoomStore>,
            keep: Some(Box::new(stop.drop_guard())),
        }
    }

    /// The room's record deleted, its memberships left: what a crash after the first
    /// write of a deletion leaves.
    async fn crash_mid_delete(&self, _instance: &Instance, room: &str) {
        let client = nats_callout::app::connect(&self.env.config).await.unwrap();
        let kv = nats_callout::kv::context(client)
            .get_key_value("suite_rooms")
            .await
            .unwrap();
        kv.delete(format!("room.{room}")).await.unwrap();
    }
}

nats_callout::testing::rooms_suite::run_suite!(KvRoomsBackend::start().await);
