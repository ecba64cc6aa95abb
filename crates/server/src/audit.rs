//! The read-access audit trail: every answered read or change of a person's agreements becomes an
//! [`AuditEntry`] — who asked (app, acting merchant, ISV app and token suffix), for whom, which
//! agreements came back, and the outcome.
//!
//! Entries are queued as answers are made and written by one [`AuditWriter`] in batches, each in
//! one transaction: a batch takes everything answered within 100 ms of its first entry (group
//! commit), so a request costs no write of its own. A crash loses what was queued but not yet
//! committed — at most those 100 ms and one write, well inside the one-second bound
//! (`agreements_audit_write_lag_seconds` shows it). The queue is bounded: when the store falls
//! behind, requests wait for room rather than go unrecorded.
//!
//! The server runs the writer on a thread of its own ([`AuditWriter::spawn`]): a batch is
//! hundreds of inserts and a commit that may checkpoint SQLite's WAL (writing pages back and
//! syncing the file), milliseconds of work that would otherwise hold up whichever async worker
//! polled it, and every request queued behind it. While a batch gathers, entries are queued
//! without waking the writer; it takes them all when the 100 ms are up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use agreements_domain::Agreement;
use agreements_domain::ids::UserId;
use agreements_domain::token::AppAuthToken;
use agreements_store::{AuditEntry, Store};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::metrics::Metrics;

/// Entries queued at most; more wait for the writer.
const QUEUE: usize = 8_192;
/// Entries written per transaction at most.
const BATCH: usize = 2_048;
/// How long the writer collects entries after the first of a batch before writing them: the
/// cost of a transaction is shared by everything answered meanwhile, and a crash loses at most
/// this plus one write.
const LINGER: Duration = Duration::from_millis(100);
/// How long the writer waits before writing a failed batch again, at most.
const RETRY_MAX: Duration = Duration::from_secs(1);
/// Attempts at the last batch once the writer is told to stop.
const FINAL_ATTEMPTS: u32 = 3;

/// What a method learns, as it runs, about whose agreements its request concerns. A request that
/// never names anyone (say, a malformed `biz_content`) leaves it empty and is not audited.
#[derive(Debug, Default)]
pub struct Note(Mutex<Noted>);

#[derive(Debug, Default)]
struct Noted {
    asked: Option<String>,
    user_id: Option<String>,
    agreements: Vec<String>,
}

impl Note {
    /// Whom or what the request named, already masked.
    pub fn asked(&self, what: String) {
        self.with(|n| n.asked = Some(what));
    }

    /// The account the request resolved to.
    pub fn person(&self, user: &UserId) {
        self.with(|n| n.user_id = Some(user.as_str().to_owned()));
    }

    /// Agreements the answer carries or the change touched (their account is the person when
    /// none was resolved, as when an agreement is named by number).
    pub fn returned<'a>(&self, agreements: impl IntoIterator<Item = &'a Agreement>) {
        self.with(|n| {
            for a in agreements {
                if n.user_id.is_none() {
                    n.user_id = Some(a.alipay_user_id.as_str().to_owned());
                }
                n.agreements.push(a.agreement_no.as_str().to_owned());
            }
        });
    }

    fn with(&self, f: impl FnOnce(&mut Noted)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn take(&self) -> Option<Noted> {
        let noted = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        noted.asked.is_some().then_some(noted)
    }
}

/// Who asked: the request's context beside what its method noted.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    /// `v2`, `v3` or `page`.
    pub channel: &'static str,
    /// The method or page.
    pub method: &'static str,
    /// The calling app.
    pub app_id: Option<&'a str>,
    /// The merchant it acted for.
    pub partner_id: Option<&'a str>,
    /// The ISV authorisation it carried.
    pub token: Option<&'a AppAuthToken>,
}

/// The answer's outcome: `code` and, on failure, `sub_code`.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    /// `10000` for success.
    pub code: &'a str,
    /// Empty for success.
    pub sub_code: &'a str,
}

impl Outcome<'static> {
    /// Success.
    pub const SUCCESS: Self = Self {
        code: "10000",
        sub_code: "",
    };
}

enum Message {
    Entry(Box<AuditEntry>, Instant),
    Flush(oneshot::Sender<()>),
}

/// The handle requests record entries through; off (recording nothing) by default.
#[derive(Debug, Clone, Default)]
pub struct AuditTrail(Option<Arc<Queue>>);

#[derive(Debug)]
struct Queue {
    sender: mpsc::Sender<Message>,
    /// This process's part of entry ids (random, so that processes sharing a database never
    /// collide), and the sequence within it.
    tag: String,
    seq: AtomicU64,
    metrics: Arc<Metrics>,
    /// Told when a flush is queued: it ends the writer's wait for the batch to fill.
    flushing: Arc<Notify>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Entry(e, _) => write!(f, "Entry({})", e.id),
            Self::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl AuditTrail {
    /// A trail written to `store` by the returned writer, which the caller runs.
    pub fn start(store: Arc<Store>, metrics: Arc<Metrics>) -> (Self, AuditWriter) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let tag = agreements_protocol::crypto::random_alphanumeric(8).unwrap_or_default();
        let flushing = Arc::new(Notify::new());
        let queue = Queue {
            sender,
            tag,
            seq: AtomicU64::new(0),
            metrics: metrics.clone(),
            flushing: flushing.clone(),
        };
        let writer = AuditWriter {
            store,
            receiver,
            metrics,
            flushing,
        };
        (Self(Some(Arc::new(queue))), writer)
    }

    /// Records an answer, if its method noted whom it concerned. Waits when the queue is full.
    pub async fn record(&self, asker: Asker<'_>, note: &Note, outcome: Outcome<'_>, at_ms: i64) {
        let (Some(queue), Some(noted)) = (&self.0, note.take()) else {
            return;
        };
        let seq = queue.seq.fetch_add(1, Ordering::Relaxed);
        let entry = AuditEntry {
            id: format!("{at_ms:013}-{}-{seq}", queue.tag),
            at_ms,
            channel: asker.channel.to_owned(),
            method: asker.method.to_owned(),
            app_id: asker.app_id.map(str::to_owned),
            partner_id: asker.partner_id.map(str::to_owned),
            isv_app_id: asker.token.map(|t| t.isv_app_id.as_str().to_owned()),
            token_suffix: asker.token.map(|t| suffix(&t.token)),
            user_id: noted.user_id,
            asked: noted.asked,
            returned: i64::try_from(noted.agreements.len()).unwrap_or(i64::MAX),
            agreement_nos: noted.agreements.join(" "),
            code: outcome.code.to_owned(),
            sub_code: (!outcome.sub_code.is_empty()).then(|| outcome.sub_code.to_owned()),
        };
        queue.metrics.audit_queued();
        if queue
            .sender
            .send(Message::Entry(Box::new(entry), Instant::now()))
            .await
            .is_err()
        {
            queue.metrics.audit_lost(1);
            tracing::error!("the audit writer has stopped; an entry was not recorded");
        }
    }

    /// Waits until every entry recorded before this call is written (or the writer stopped).
    pub async fn flush(&self) {
        let Some(queue) = &self.0 else { return };
        let (done, written) = oneshot::channel();
        if queue.sender.send(Message::Flush(done)).await.is_ok() {
            queue.flushing.notify_one();
            let _ = written.await;
        }
    }
}

/// The last four characters of a token: enough to tell tokens apart, useless to a thief.
fn suffix(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// Writes queued entries in batches until told to stop, then writes what is left.
#[derive(Debug)]
pub struct AuditWriter {
    store: Arc<Store>,
    receiver: mpsc::Receiver<Message>,
    metrics: Arc<Metrics>,
    flushing: Arc<Notify>,
}

impl AuditWriter {
    /// Runs [`AuditWriter::run`] on a thread of its own (`audit-writer`), driven through the
    /// current runtime's handle (its timers, and its I/O for PostgreSQL); the returned future
    /// completes when the writer has stopped. Must be called within a Tokio runtime.
    pub fn spawn(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<impl Future<Output = ()>> {
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let (done, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                runtime.block_on(self.run(stop));
                drop(done);
            })?;
        Ok(async move {
            let _ = stopped.await;
        })
    }

    /// Runs until `stop` completes (then drains the queue) or every [`AuditTrail`] is dropped.
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut stopping = false;
        let mut batch = Batch::default();
        let mut flushes = Vec::new();
        let mut backlog = false;
        while !stopping {
            let first = tokio::select! {
                biased;
                message = self.receiver.recv() => message,
                () = &mut stop => break,
            };
            let Some(first) = first else { break };
            self.take(first, &mut batch, &mut flushes);
            // Group commit: what arrives within LINGER joins this transaction. The writer
            // sleeps meanwhile rather than wake for each entry; a flush or the stop signal ends
            // the wait, and a full batch left behind in the queue is written without one.
            if !backlog && flushes.is_empty() {
                tokio::select! {
                    biased;
                    () = &mut stop => stopping = true,
                    () = self.flushing.notified() => {}
                    () = tokio::time::sleep(LINGER) => {}
                }
            }
            while batch.entries.len() < BATCH {
                match self.receiver.try_recv() {
                    Ok(message) => self.take(message, &mut batch, &mut flushes),
                    Err(_) => break,
                }
            }
            backlog = batch.entries.len() >= BATCH;
            self.write(&mut batch, None).await;
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
        // Stopping: whatever is queued, then done.
        self.receiver.close();
        while let Some(message) = self.receiver.recv().await {
            self.take(message, &mut batch, &mut flushes);
            if batch.entries.len() >= BATCH {
                self.write(&mut batch, Some(FINAL_ATTEMPTS)).await;
            }
        }
        self.write(&mut batch, Some(FINAL_ATTEMPTS)).await;
        for done in flushes {
            let _ = done.send(());
        }
    }

    fn take(&self, message: Message, batch: &mut Batch, flushes: &mut Vec<oneshot::Sender<()>>) {
        match message {
            Message::Entry(entry, queued) => {
                batch.oldest.get_or_insert(queued);
                batch.entries.push(*entry);
            }
            Message::Flush(done) => flushes.push(done),
        }
    }

    /// Writes `batch` (retrying with backoff while the store fails: at most `attempts` times,
    /// or until it succeeds), then empties it.
    async fn write(&self, batch: &mut Batch, attempts: Option<u32>) {
        let Some(oldest) = batch.oldest.take() else {
            return;
        };
        let entries = std::mem::take(&mut batch.entries);
        let mut wait = Duration::from_millis(50);
        let mut tried = 0;
        loop {
            tried += 1;
            match self.store.append_audit(&entries).await {
                Ok(()) => {
                    self.metrics.audit_written(entries.len(), oldest.elapsed());
                    break;
                }
                Err(e) if attempts.is_some_and(|n| tried >= n) => {
                    self.metrics.audit_lost(entries.len());
                    tracing::error!(
                        error = %crate::telemetry::chain(&e),
                        lost = entries.len(),
                        "audit entries could not be written before stopping"
                    );
                    break;
                }
                Err(e) => {
                    tracing::error!(
                        error = %crate::telemetry::chain(&e),
                        pending = entries.len(),
                        "writing audit entries failed; trying again"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

/// Entries taken from the queue for one transaction, and when the first of them was queued.
#[derive(Debug, Default)]
struct Batch {
    entries: Vec<AuditEntry>,
    oldest: Option<Instant>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_shows_only_its_last_four_characters() {
        assert_eq!(suffix("201509BBeff9351ad1874306903e96b91d248A36"), "8A36");
        assert_eq!(suffix("abc"), "abc");
        assert_eq!(suffix("令牌一二三四五"), "二三四五");
    }

    #[test]
    fn a_note_without_an_asked_subject_is_not_audited() {
        let user = UserId::parse("2088101122675263").unwrap();
        let note = Note::default();
        assert!(note.take().is_none());
        note.person(&user);
        assert!(note.take().is_none());
        note.person(&user);
        note.asked("alipay_user_id 2088101122675263".into());
        let noted = note.take().unwrap();
        assert_eq!(noted.user_id.as_deref(), Some(user.as_str()));
        assert!(note.take().is_none(), "taken once");
    }
}
