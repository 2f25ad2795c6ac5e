//! The minimal responder: the same crypto as the callout (open the sealed request, verify
//! it, sign a user JWT and the response, seal) with one fixed grant, and nothing else: no
//! token check, no permission store, no log line. The floor of any callout.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use nats_callout::callout::envelope;
use nats_callout::claims::request;
use nats_callout::claims::response::{Outcome, Permission, UserJwt, UserPermissions, response_jwt, user_jwt};
use nats_callout::clock::now_secs;
use nats_callout::config::Config;
use nats_callout::keys::CalloutKeys;
use nats_callout::wire::AUTH_SUBJECT;

/// The one grant every client gets (the same shape as a one-room callout grant).
fn fixed_grant() -> UserPermissions {
    let inbox = "_INBOX.bench.>".to_string();
    UserPermissions {
        publish: Permission::only(vec!["chat.all1.bench".into()]),
        subscribe: Permission::only(vec![inbox, "chat.all1.>".into()]),
    }
}

struct Responder {
    keys: CalloutKeys,
    account: String,
    grant: UserPermissions,
}

impl Responder {
    fn answer(&self, payload: &[u8], header: Option<&str>, now: i64) -> Vec<u8> {
        let Ok(opened) = envelope::open(payload, header, self.keys.xkey()) else {
            return Vec::new();
        };
        let Ok(req) = request::verify(&opened.jwt, self.keys.issuer_public(), now) else {
            return Vec::new();
        };
        let (issuer, issuer_pk) = (self.keys.issuer(), self.keys.issuer_public());
        let user = UserJwt {
            user_nkey: &req.user_nkey,
            name: "bench",
            account: &self.account,
            expires_at: now + 3600,
            permissions: &self.grant,
            issuer_account: None,
            subscriptions: None,
            record: None,
            connection_types: &[],
        };
        let Ok(jwt) = user_jwt(issuer, issuer_pk, &user, now) else {
            return Vec::new();
        };
        let Ok(reply) = response_jwt(
            issuer,
            issuer_pk,
            &req.user_nkey,
            &req.server_id.id,
            Outcome::Allow(&jwt),
            now,
        ) else {
            return Vec::new();
        };
        envelope::seal(
            reply,
            self.keys.xkey(),
            opened.server_xkey.as_ref().map(|(_, k)| k),
        )
    }
}

/// Serve until stdin closes.
pub async fn serve(config: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config)?;
    let keys = CalloutKeys::load(
        &config.callout.issuer_seed_file,
        config.callout.xkey_seed_file.as_deref(),
    )?;
    let responder = Arc::new(Responder {
        keys,
        account: config.callout.account.clone(),
        grant: fixed_grant(),
    });
    let client = nats_callout::app::connect(&config).await?;
    let mut sub = client
        .queue_subscribe(AUTH_SUBJECT, "bench-responder".to_string())
        .await?;
    client.flush().await?;
    println!("ready");
    let stop = tokio::task::spawn_blocking(|| {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            if line.is_err() {
                break;
            }
        }
    });
    tokio::pin!(stop);
    loop {
        let msg = tokio::select! {
            m = sub.next() => match m { Some(m) => m, None => break },
            _ = &mut stop => break,
        };
        let (client, responder) = (client.clone(), responder.clone());
        tokio::spawn(async move {
            let Some(reply_to) = msg.reply.clone() else { return };
            let reply = responder.answer(&msg.payload, envelope::server_xkey(&msg), now_secs());
            let _ = client.publish(reply_to, reply.into()).await;
        });
    }
    let _ = client.flush().await;
    Ok(())
}
