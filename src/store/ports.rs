//! Host ports: port areas (blocks allocated first-fit from `--port-area-range`) and explicit
//! `hostPort` claims, checked against every other app's inside the write's transaction.

use sqlx::{Any, Transaction};

use super::record::WriteItem;
use super::{Store, StoreError, StoreResult};
use crate::spec::Kind;
use crate::spec::validate::AppKey;

/// The host ports port areas are allocated from (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl Default for PortRange {
    fn default() -> Self {
        let (first, last) = crate::defaults::PORT_AREA_RANGE;
        Self { first, last }
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?}: write FIRST-LAST, e.g. 20000-32767"))?;
        let port = |t: &str| {
            t.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{t:?} is not a port number (1-65535)"))
        };
        let (first, last) = (port(a)?, port(b)?);
        if first > last {
            return Err(format!("{s:?}: the first port is above the last"));
        }
        Ok(Self { first, last })
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl Store {
    /// Allocates port areas from `range` instead of the default.
    pub fn with_port_areas(mut self, range: PortRange) -> Self {
        self.port_areas = range;
        self
    }

    /// Checks an App's explicit host ports against every other app's claims, allocates (or
    /// keeps) its port area, and records its claims. Returns the area's first port. Reads come
    /// first, so a refusal leaves `tx` untouched.
    pub(super) async fn claim_ports_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        item: &WriteItem,
        uid: &str,
        current_root: Option<u16>,
    ) -> StoreResult<Option<u16>> {
        if item.kind != Kind::App {
            return Ok(None);
        }
        let wants = &item.ports;
        for (field, port, protocol) in &wants.host_ports {
            let clash: Option<(String, String, i64, i64, String)> = sqlx::query_as(
                "SELECT namespace, name, first, last, protocol FROM port_claims WHERE uid != $1 AND first <= $2 AND last >= $3 AND (protocol = '*' OR protocol = $4) LIMIT 1",
            )
            .bind(uid)
            .bind(i64::from(*port))
            .bind(i64::from(*port))
            .bind(protocol)
            .fetch_optional(&mut **tx)
            .await?;
            if let Some((namespace, name, first, last, kind)) = clash {
                let holder = AppKey { namespace, name };
                let how = if kind == "*" {
                    format!("lies in the port area of app {holder} ({first}-{last})")
                } else {
                    format!("is already published by app {holder}")
                };
                return Err(StoreError::Conflict(format!(
                    "{}: {field}: host port {port}/{protocol} {how}",
                    item.kind.describe(&item.key)
                )));
            }
        }
        let root = match wants.area {
            Some(size) => Some(self.allocate_in(tx, item, uid, size, current_root).await?),
            None => None,
        };
        sqlx::query("DELETE FROM port_claims WHERE uid = $1")
            .bind(uid)
            .execute(&mut **tx)
            .await?;
        let area = root.zip(wants.area).map(|(root, size)| {
            let last = u32::from(root) + u32::from(size) - 1;
            (root, last as u16, "*".to_string())
        });
        let explicit = wants
            .host_ports
            .iter()
            .map(|(_, port, protocol)| (*port, *port, protocol.clone()));
        for (first, last, protocol) in area.into_iter().chain(explicit) {
            sqlx::query(
                "INSERT INTO port_claims (uid, namespace, name, first, last, protocol) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(uid)
            .bind(&item.key.namespace)
            .bind(&item.key.name)
            .bind(i64::from(first))
            .bind(i64::from(last))
            .bind(protocol)
            .execute(&mut **tx)
            .await?;
        }
        Ok(root)
    }

    /// A free block of `size` ports in the configured range, not overlapping any other app's
    /// claim: the current one when it is still free, else the lowest that fits.
    pub(super) async fn allocate_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        item: &WriteItem,
        uid: &str,
        size: u16,
        current_root: Option<u16>,
    ) -> StoreResult<u16> {
        let range = self.port_areas;
        let size = u32::from(size.max(1));
        let (lo, hi) = (u32::from(range.first), u32::from(range.last));
        let taken: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT first, last FROM port_claims WHERE uid != $1 AND last >= $2 AND first <= $3 ORDER BY first",
        )
        .bind(uid)
        .bind(i64::from(range.first))
        .bind(i64::from(range.last))
        .fetch_all(&mut **tx)
        .await?;
        let free = |root: u32| {
            let end = root + size - 1;
            root >= lo
                && end <= hi
                && !taken
                    .iter()
                    .any(|(f, l)| *f <= i64::from(end) && *l >= i64::from(root))
        };
        if let Some(root) = current_root
            && free(u32::from(root))
        {
            return Ok(root);
        }
        let mut candidate = lo;
        for (first, last) in &taken {
            if i64::from(candidate + size - 1) < *first {
                break;
            }
            candidate = candidate.max(u32::try_from(*last + 1).unwrap_or(u32::MAX));
        }
        if candidate.checked_add(size - 1).is_some_and(|end| end <= hi) && free(candidate) {
            return Ok(candidate as u16);
        }
        Err(StoreError::Conflict(format!(
            "{}: spec.portArea.size: no free block of {size} host ports is left in {range} (the server's --port-area-range)",
            item.kind.describe(&item.key)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Format, read_bundle};
    use crate::store::ObjectSource;

    fn item(name: &str, extra: &str) -> WriteItem {
        let yaml = format!(
            "apiVersion: wharf/v1\nkind: App\nmetadata: {{name: {name}, namespace: demo}}\nspec:\n  image: busybox:1\n{extra}"
        );
        let docs = read_bundle(&yaml, Format::Yaml, None).expect("valid");
        WriteItem::new(&docs[0])
    }

    async fn root(store: &Store, item: &WriteItem) -> Result<Option<u16>, String> {
        store
            .apply(std::slice::from_ref(item), &ObjectSource::Api)
            .await
            .map(|mut out| out.remove(0).1.host_port_root)
            .map_err(|e| e.to_string())
    }

    async fn port_areas_are_allocated_first_fit_and_host_ports_are_claimed(
        db: crate::store::TestDb,
    ) {
        let store = db.open().await.with_port_areas(PortRange {
            first: 100,
            last: 129,
        });
        let area = |n: u16| format!("  portArea: {{size: {n}}}\n");
        assert_eq!(root(&store, &item("a", &area(10))).await, Ok(Some(100)));
        assert_eq!(root(&store, &item("b", &area(10))).await, Ok(Some(110)));
        assert_eq!(
            root(&store, &item("c", "  ports: ['125:80']\n")).await,
            Ok(None)
        );
        // 120-129 holds c's port 125: no block of 10 is left, one of 4 is.
        let full = root(&store, &item("d", &area(10))).await.unwrap_err();
        assert!(
            full.contains("no free block of 10") && full.contains("100-129"),
            "{full}"
        );
        assert_eq!(root(&store, &item("d", &area(4))).await, Ok(Some(120)));

        // Explicit host ports: inside another block, or published by another app, are refused
        // with that app's name; another protocol on the same number is not a clash.
        let clash = root(&store, &item("e", "  ports: ['105:80']\n"))
            .await
            .unwrap_err();
        assert!(
            clash.contains("spec.ports[0].hostPort") && clash.contains("demo/a"),
            "{clash}"
        );
        let clash = root(&store, &item("e", "  ports: ['125:80']\n"))
            .await
            .unwrap_err();
        assert!(clash.contains("already published by app demo/c"), "{clash}");
        assert_eq!(
            root(&store, &item("e", "  ports: ['125:80/udp']\n")).await,
            Ok(None)
        );

        // Re-applying keeps the block; growing into a neighbour moves it or is refused.
        assert_eq!(root(&store, &item("b", &area(10))).await, Ok(Some(110)));
        let grown = root(&store, &item("b", &area(12))).await.unwrap_err();
        assert!(grown.contains("no free block of 12"), "{grown}");
        assert_eq!(root(&store, &item("b", &area(10))).await, Ok(Some(110)));

        // A forgotten app's block is free again.
        let key = AppKey {
            namespace: "demo".into(),
            name: "a".into(),
        };
        let record = store
            .delete(Kind::App, &key, None, None)
            .await
            .expect("marked");
        assert!(
            root(&store, &item("g", &area(10))).await.is_err(),
            "while a is being deleted its block stays taken"
        );
        assert!(store.forget(&record.uid).await.expect("forgot"));
        assert_eq!(root(&store, &item("h", &area(10))).await, Ok(Some(100)));
    }

    crate::store::on_both_databases!(port_areas_are_allocated_first_fit_and_host_ports_are_claimed);
}
