//! Device-code logins started from the page. The wait for approval runs in its own task (a
//! page that reloads or closes must not cancel a sign-in the person is approving); the page
//! asks for the outcome by id. Bounded: a few waits at once, each ending with the code's
//! lifetime, outcomes kept briefly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codex_proxy_proto::Response;

use crate::app::AppState;

/// Device logins waiting at once.
pub const MAX_WAITING: usize = 4;
/// An outcome nobody asked for is forgotten after this.
const KEEP_OUTCOME: Duration = Duration::from_secs(10 * 60);

#[derive(Debug)]
enum Login {
    Waiting(tokio::task::AbortHandle),
    Done(Box<Response>, Instant),
}

#[derive(Debug, Default)]
pub struct DeviceLogins {
    logins: Mutex<HashMap<String, Login>>,
}

/// What the page learns about one device login.
#[derive(Debug)]
pub enum Progress {
    Waiting,
    Done(Box<Response>),
    Unknown,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn new_id() -> String {
    let mut bytes = [0u8; 12];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl DeviceLogins {
    /// Asks for a device code and waits for its approval in the background. Returns the id to
    /// ask about and what to show ([`Response::DeviceCode`]), or the refusal.
    pub async fn start(self: &Arc<Self>, state: &AppState) -> Result<(String, Response), Response> {
        if self.waiting() >= MAX_WAITING {
            return Err(Response::Error(codex_proxy_proto::ErrorReply::new(
                codex_proxy_proto::ErrorKind::Busy,
                format!(
                    "{MAX_WAITING} device logins are already waiting for approval; finish or cancel one first"
                ),
            )));
        }
        let started = crate::control::device_begin(state).await?;
        let shown = started.shown.clone();
        let id = new_id();
        let task_state = state.clone();
        let task_id = id.clone();
        let devices = Arc::clone(self);
        let mut logins = lock(&self.logins);
        let now = Instant::now();
        logins.retain(
            |_, l| !matches!(l, Login::Done(_, at) if now.duration_since(*at) > KEEP_OUTCOME),
        );
        let task = tokio::spawn(async move {
            let outcome = crate::control::device_finish(&task_state, started).await;
            let mut logins = lock(&devices.logins);
            if logins.contains_key(&task_id) {
                logins.insert(task_id, Login::Done(Box::new(outcome), Instant::now()));
            }
        });
        logins.insert(id.clone(), Login::Waiting(task.abort_handle()));
        Ok((id, shown))
    }

    fn waiting(&self) -> usize {
        lock(&self.logins)
            .values()
            .filter(|l| matches!(l, Login::Waiting(_)))
            .count()
    }

    /// Where the login stands; a finished one is handed out once.
    pub fn progress(&self, id: &str) -> Progress {
        let mut logins = lock(&self.logins);
        match logins.get(id) {
            None => Progress::Unknown,
            Some(Login::Waiting(_)) => Progress::Waiting,
            Some(Login::Done(..)) => match logins.remove(id) {
                Some(Login::Done(outcome, _)) => Progress::Done(outcome),
                _ => Progress::Unknown,
            },
        }
    }

    /// Stops waiting; `false` when there was no such login.
    pub fn cancel(&self, id: &str) -> bool {
        match lock(&self.logins).remove(id) {
            Some(Login::Waiting(task)) => {
                task.abort();
                tracing::info!("device-code login cancelled from the dashboard");
                true
            }
            Some(Login::Done(..)) => true,
            None => false,
        }
    }
}
