//! Hot reload of the traffic, admin, auth and scheduling sections of the config file,
//! on a change of the file and on SIGHUP. The folder is watched (editors replace files by
//! rename; a Kubernetes ConfigMap is updated by renaming a new `..data` symlink over the
//! old, the file being a symlink through it) and events are debounced. A file that does not parse or fails
//! validation is refused with an error log and a metric; the last good
//! config stays in force. Other sections need a restart: a reload that
//! changes them says so in the log and leaves them as they were.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use tokio::sync::mpsc;

use crate::app::App;
use crate::auth::Verifier;
use crate::config::Config;
use crate::traffic::{Loaded, TrafficPolicy};

/// How long the file must be quiet before it is read.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The symlink a Kubernetes ConfigMap volume swaps to publish an update.
const CONFIGMAP_DATA: &str = "..data";

/// Watches `path` and SIGHUP until the task is aborted.
pub async fn watch(app: Arc<App>, path: PathBuf) {
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let _debouncer = match watch_file(&path, tx.clone()) {
        Ok(debouncer) => Some(debouncer),
        Err(err) => {
            tracing::error!(path = %path.display(), error = %err, "cannot watch the config file; SIGHUP still reloads");
            None
        }
    };
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGHUP");
            None
        }
    };
    loop {
        let trigger = tokio::select! {
            Some(trigger) = rx.recv() => trigger,
            Some(()) = async { match hangups.as_mut() { Some(s) => s.recv().await, None => None } } => "sighup",
            else => return,
        };
        reload(&app, &path, trigger);
    }
}

type Debouncer = notify_debouncer_full::Debouncer<
    notify_debouncer_full::notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

fn watch_file(
    path: &Path,
    tx: mpsc::UnboundedSender<&'static str>,
) -> notify_debouncer_full::notify::Result<Debouncer> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let name = path.file_name().map(|n| n.to_owned());
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        // Only writes, creations, renames and removals: reading the file to
        // reload it is an event too, and must not start another reload.
        let ours = events.iter().any(|event| {
            matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_))
                && event
                    .paths
                    .iter()
                    .any(|p| p.file_name() == name.as_deref() || p.file_name() == Some(CONFIGMAP_DATA.as_ref()))
        });
        if ours {
            let _ = tx.send("file change");
        }
    })?;
    debouncer.watch(&folder, RecursiveMode::NonRecursive)?;
    Ok(debouncer)
}

/// Reads the file and swaps in its traffic section, or keeps the last good one.
pub fn reload(app: &App, path: &Path, trigger: &str) {
    match Config::load(Some(path)) {
        // Validated against its own flag: a reload must not switch the gate
        // that keeps development secrets out of a deployment.
        Ok(new) if new.server.development != app.config.server.development => {
            tracing::error!(trigger, "config reload refused: server.development changes on restart only");
            metrics::counter!("gateway_config_reloads_total", "result" => "failed").increment(1);
        }
        Ok(new) => {
            let current = app.traffic.load_full();
            if new.traffic == current.config {
                tracing::info!(trigger, "config reloaded: traffic unchanged");
            } else {
                let policy = TrafficPolicy::build(new.traffic.clone(), Some(&current));
                app.traffic.store(Arc::new(policy));
                app.center.reload_breakers(&new.traffic.breakers);
                let previous = app.loaded.load_full();
                metrics::gauge!("gateway_config_info", "hash" => previous.traffic_hash.clone()).set(0.0);
                let loaded = Loaded::new(&new.traffic, Some(path.to_path_buf()));
                tracing::info!(trigger, from = %previous.traffic_hash, to = %loaded.traffic_hash, "config reloaded: new traffic limits in force");
                app.loaded.store(Arc::new(loaded));
            }
            if app.auth.load().config != new.auth {
                // Built when the config was validated: cannot fail here.
                if let Ok(verifier) = Verifier::build(&new.auth, new.server.development) {
                    app.auth.store(Arc::new(verifier));
                    tracing::info!(trigger, keys = ?new.auth.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(), "config reloaded: new buyer auth in force");
                }
            }
            if **app.center.scheduling.load() != new.scheduling {
                app.center.scheduling.store(Arc::new(new.scheduling.clone()));
                tracing::info!(trigger, "config reloaded: new scheduling rules in force");
            }
            if **app.admin.load() != new.admin {
                app.admin.store(Arc::new(new.admin.clone()));
                tracing::info!(trigger, tokens = ?new.admin.tokens.keys().collect::<Vec<_>>(), "config reloaded: new admin tokens in force");
            }
            if changed_outside_reloadable(&new, &app.config) {
                tracing::warn!(
                    trigger,
                    "config changes outside [traffic], [admin], [auth] and [scheduling] take effect on restart only"
                );
            }
            metrics::counter!("gateway_config_reloads_total", "result" => "ok").increment(1);
        }
        Err(err) => {
            tracing::error!(trigger, error = %err, "config reload refused; the last good config stays in force");
            metrics::counter!("gateway_config_reloads_total", "result" => "failed").increment(1);
        }
    }
}

fn changed_outside_reloadable(new: &Config, running: &Config) -> bool {
    let mut comparable = new.clone();
    comparable.traffic = running.traffic.clone();
    comparable.admin = running.admin.clone();
    comparable.auth = running.auth.clone();
    comparable.scheduling = running.scheduling.clone();
    comparable != *running
}
