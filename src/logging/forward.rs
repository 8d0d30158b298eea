//! The log lines of one request to the daemon's control socket, sent back to the client that asked, as well as to the
//! daemon's own log.
//!
//! The daemon runs a request inside the span of a [`Route`]; this layer looks for that span among an event's
//! ancestors and hands the event, as one line of text, to the route's sink. Work the request spawns keeps the span
//! (`fanout::bounded` instruments its tasks), so an order's lines come back too. Events outside any route (the
//! daemon's own passes, the responder) reach no client. The daemon's log filter applies: a client sees what the
//! journal sees.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber, span};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The span field that carries a route's number.
const ROUTE_FIELD: &str = "control_request";

type Sink = Arc<dyn Fn(String) + Send + Sync>;

static ROUTES: Mutex<BTreeMap<u64, Sink>> = Mutex::new(BTreeMap::new());
static NEXT_ROUTE: AtomicU64 = AtomicU64::new(1);

/// Where the log lines of one request go while it lives; dropping it stops the forwarding.
pub struct Route {
    id: u64,
}

impl Route {
    pub fn open(sink: impl Fn(String) + Send + Sync + 'static) -> Route {
        let id = NEXT_ROUTE.fetch_add(1, Ordering::Relaxed);
        routes().insert(id, Arc::new(sink));
        Route { id }
    }

    /// The span to run the request in. At ERROR level so that no log filter disables it: a disabled span would
    /// forward nothing, not even the request's errors.
    pub fn span(&self) -> tracing::Span {
        tracing::error_span!("control", control_request = self.id)
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        routes().remove(&self.id);
    }
}

fn routes() -> std::sync::MutexGuard<'static, BTreeMap<u64, Sink>> {
    ROUTES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The layer `logging::init` installs.
pub struct Forward;

/// A span's route number, kept in its extensions.
struct RouteId(u64);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Forward {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut found = FindRoute(None);
        attrs.record(&mut found);
        if let (Some(route), Some(span)) = (found.0, ctx.span(id)) {
            span.extensions_mut().insert(RouteId(route));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(route) = scope
            .from_root()
            .find_map(|span| span.extensions().get::<RouteId>().map(|r| r.0))
        else {
            return;
        };
        // Cloned out so that the sink runs without the lock.
        let sink = routes().get(&route).cloned();
        if let Some(sink) = sink {
            let mut fields = Fields::default();
            event.record(&mut fields);
            sink(line(*event.metadata().level(), &fields.message, &fields.rest));
        }
    }
}

struct FindRoute(Option<u64>);

impl Visit for FindRoute {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == ROUTE_FIELD {
            self.0 = Some(value);
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            name => self.rest.push((name, value.to_owned())),
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            name => self.rest.push((name, format!("{value:?}"))),
        }
    }
}

/// One forwarded line, as the text log writes it without the time: level, message, then the fields.
pub fn line(level: Level, message: &str, fields: &[(&str, String)]) -> String {
    let mut out = format!("{level:>5} {message}");
    for (name, value) in fields {
        let _ = write!(out, " {name}={value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_events_inside_a_routes_span_reach_its_sink_nested_spans_included() {
        use tracing_subscriber::layer::SubscriberExt;

        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Forward);
        tracing::subscriber::with_default(subscriber, || {
            let caught = lines.clone();
            let route = Route::open(move |line| caught.lock().unwrap().push(line));
            tracing::info!("before the request");
            route.span().in_scope(|| {
                tracing::info!(certificate = "site", "renewal forced");
                tracing::info_span!("order").in_scope(|| tracing::warn!("slow CA"));
            });
            drop(route);
            tracing::info!("after the request");
        });
        assert_eq!(
            *lines.lock().unwrap(),
            [" INFO renewal forced certificate=site", " WARN slow CA"]
        );
    }

    #[test]
    fn a_line_has_the_level_the_message_and_the_fields_in_order() {
        let fields = [("name", "site".to_owned()), ("serial", "0a".to_owned())];
        assert_eq!(
            line(Level::INFO, "renewed", &fields),
            " INFO renewed name=site serial=0a"
        );
        assert_eq!(line(Level::WARN, "slow", &[]), " WARN slow");
    }
}
