//! The worker's entry points, and only those: `fetch` (the API, behind the router), `queue` (each
//! queue's batches to its consumer), `scheduled` (the monitor's alert run) and `start` (once per
//! isolate, before its first request).

use worker::*;

use super::bindings::{CRM_WRITES_QUEUE, LOGS_QUEUE, SCORE_EVENTS_DLQ};
use super::env::Config;
use super::outbox::Delivery;
use super::{arms, crm_writes, deadletter, delivery, logs, monitor, routes};

/// The isolate's default scorer built and run once before any request ([`arms::warm`]).
#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
    arms::warm();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    let cfg = Config::from_env(&env);
    let origin = req.headers().get("origin")?;
    let mut resp = match routes::dispatch(req, &env, &cfg).await {
        Ok(r) => r,
        Err(e) => e.response()?,
    };
    if let Some(o) = origin.filter(|o| cfg.allowed_origins.iter().any(|a| a == o)) {
        let h = resp.headers_mut();
        h.set("access-control-allow-origin", &o)?;
        h.set("vary", "Origin")?;
    }
    Ok(resp)
}

/// One consumer per queue, told apart by the queue's name (wrangler.toml).
#[event(queue)]
async fn queue(batch: MessageBatch<Delivery>, env: Env, _ctx: Context) -> Result<()> {
    console_error_panic_hook::set_once();
    match batch.queue().as_str() {
        SCORE_EVENTS_DLQ => deadletter::keep(batch, &env).await,
        LOGS_QUEUE => logs::write(batch, &env).await,
        CRM_WRITES_QUEUE => crm_writes::offer_batch(batch, &env).await,
        _ => delivery::deliver_batch(batch, &env).await,
    }
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    console_error_panic_hook::set_once();
    // The run judges as of its scheduled time (the cron's tick; locally `/__scheduled?time=`).
    if let Err(e) = monitor::scheduled(&env, event.schedule() as i64).await {
        console_error!("monitor: scheduled run failed: {e}");
    }
}
