//! Node command-surface approval (migration 0005): the approved surface of each node and the
//! pending surface requests.
//!
//! The store keeps records only; the rules (which commands a platform may declare, who may
//! approve what) live in the gateway. Writes run on the writer thread inside the batch
//! transaction via [`Store::nodes_write`], so "read the pending request, store the approved
//! surface, delete the request" is atomic and acknowledged after `COMMIT`.

use std::any::Any;
use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::{Result, StoreError};
use crate::writer::Op;
use crate::Store;

/// Node permission toggles (`connect.params.permissions`).
pub type NodePermissions = BTreeMap<String, bool>;

/// Client metadata a node reported (kept with requests and approved surfaces).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeMeta {
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub version: Option<String>,
    pub device_family: Option<String>,
    pub model_identifier: Option<String>,
    pub client_id: Option<String>,
    pub client_mode: Option<String>,
    pub remote_ip: Option<String>,
}

/// The approved surface of a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeSurface {
    pub node_id: String,
    pub meta: NodeMeta,
    pub caps: Vec<String>,
    pub commands: Vec<String>,
    pub permissions: Option<NodePermissions>,
    pub created_at_ms: i64,
    pub approved_at_ms: i64,
    pub last_connected_at_ms: Option<i64>,
    pub last_disconnected_at_ms: Option<i64>,
    pub last_seen_at_ms: Option<i64>,
    pub last_seen_reason: Option<String>,
}

/// A pending surface request (at most one per node).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodePairingRequest {
    pub request_id: String,
    pub node_id: String,
    pub meta: NodeMeta,
    pub caps: Vec<String>,
    pub commands: Vec<String>,
    pub permissions: Option<NodePermissions>,
    pub silent: bool,
    pub created_at_ms: i64,
}

const META_COLUMNS: &str = "display_name, platform, version, device_family, model_identifier, \
     client_id, client_mode, remote_ip";
const SURFACE_COLUMNS: &str = "node_id, caps_json, commands_json, permissions_json, created_at, \
     approved_at, last_connected_at, last_disconnected_at, last_seen_at, last_seen_reason";
const REQUEST_COLUMNS: &str =
    "request_id, node_id, caps_json, commands_json, permissions_json, silent, created_at";

fn list_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse_list(text: &str) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn permissions_json(p: &Option<NodePermissions>) -> Option<String> {
    p.as_ref().and_then(|m| serde_json::to_string(m).ok())
}

fn parse_permissions(text: Option<String>) -> rusqlite::Result<Option<NodePermissions>> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
    })
    .transpose()
}

/// Metadata columns start at `at`.
fn meta_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<NodeMeta> {
    Ok(NodeMeta {
        display_name: r.get(at)?,
        platform: r.get(at + 1)?,
        version: r.get(at + 2)?,
        device_family: r.get(at + 3)?,
        model_identifier: r.get(at + 4)?,
        client_id: r.get(at + 5)?,
        client_mode: r.get(at + 6)?,
        remote_ip: r.get(at + 7)?,
    })
}

fn surface_from_row(r: &Row<'_>) -> rusqlite::Result<NodeSurface> {
    Ok(NodeSurface {
        node_id: r.get(0)?,
        caps: parse_list(&r.get::<_, String>(1)?)?,
        commands: parse_list(&r.get::<_, String>(2)?)?,
        permissions: parse_permissions(r.get(3)?)?,
        created_at_ms: r.get(4)?,
        approved_at_ms: r.get(5)?,
        last_connected_at_ms: r.get(6)?,
        last_disconnected_at_ms: r.get(7)?,
        last_seen_at_ms: r.get(8)?,
        last_seen_reason: r.get(9)?,
        meta: meta_from_row(r, 10)?,
    })
}

fn request_from_row(r: &Row<'_>) -> rusqlite::Result<NodePairingRequest> {
    Ok(NodePairingRequest {
        request_id: r.get(0)?,
        node_id: r.get(1)?,
        caps: parse_list(&r.get::<_, String>(2)?)?,
        commands: parse_list(&r.get::<_, String>(3)?)?,
        permissions: parse_permissions(r.get(4)?)?,
        silent: r.get::<_, i64>(5)? != 0,
        created_at_ms: r.get(6)?,
        meta: meta_from_row(r, 7)?,
    })
}

fn surfaces(conn: &Connection, node_id: Option<&str>) -> Result<Vec<NodeSurface>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SURFACE_COLUMNS}, {META_COLUMNS} FROM node_surfaces \
         WHERE ?1 IS NULL OR node_id = ?1 ORDER BY approved_at DESC, node_id"
    ))?;
    let rows = stmt.query_map(params![node_id], surface_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn requests(conn: &Connection, node_id: Option<&str>) -> Result<Vec<NodePairingRequest>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS}, {META_COLUMNS} FROM node_pairing_requests \
         WHERE ?1 IS NULL OR node_id = ?1 ORDER BY created_at DESC, request_id"
    ))?;
    let rows = stmt.query_map(params![node_id], request_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn request_by_id(conn: &Connection, request_id: &str) -> Result<Option<NodePairingRequest>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {REQUEST_COLUMNS}, {META_COLUMNS} FROM node_pairing_requests \
             WHERE request_id = ?1"
        ))?
        .query_row([request_id], request_from_row)
        .optional()?)
}

/// The node tables inside one writer transaction.
pub struct NodesTx<'a> {
    conn: &'a Connection,
}

impl NodesTx<'_> {
    pub fn surface(&self, node_id: &str) -> Result<Option<NodeSurface>> {
        Ok(surfaces(self.conn, Some(node_id))?.into_iter().next())
    }

    /// Insert or replace the approved surface of `s.node_id`.
    pub fn put_surface(&mut self, s: &NodeSurface) -> Result<()> {
        let m = &s.meta;
        self.conn
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO node_surfaces ({SURFACE_COLUMNS}, {META_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
            ))?
            .execute(params![
                s.node_id,
                list_json(&s.caps),
                list_json(&s.commands),
                permissions_json(&s.permissions),
                s.created_at_ms,
                s.approved_at_ms,
                s.last_connected_at_ms,
                s.last_disconnected_at_ms,
                s.last_seen_at_ms,
                s.last_seen_reason,
                m.display_name,
                m.platform,
                m.version,
                m.device_family,
                m.model_identifier,
                m.client_id,
                m.client_mode,
                m.remote_ip,
            ])?;
        Ok(())
    }

    /// Removes the approved surface; returns whether there was one.
    pub fn delete_surface(&mut self, node_id: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM node_surfaces WHERE node_id = ?1")?
            .execute([node_id])?
            > 0)
    }

    pub fn request(&self, request_id: &str) -> Result<Option<NodePairingRequest>> {
        request_by_id(self.conn, request_id)
    }

    pub fn request_for_node(&self, node_id: &str) -> Result<Option<NodePairingRequest>> {
        Ok(requests(self.conn, Some(node_id))?.into_iter().next())
    }

    /// Stores `r` as the node's only pending request (an older one of the node is replaced).
    pub fn put_request(&mut self, r: &NodePairingRequest) -> Result<()> {
        self.conn
            .prepare_cached(
                "DELETE FROM node_pairing_requests WHERE node_id = ?1 AND request_id <> ?2",
            )?
            .execute(params![r.node_id, r.request_id])?;
        let m = &r.meta;
        self.conn
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO node_pairing_requests ({REQUEST_COLUMNS}, {META_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            ))?
            .execute(params![
                r.request_id,
                r.node_id,
                list_json(&r.caps),
                list_json(&r.commands),
                permissions_json(&r.permissions),
                i64::from(r.silent),
                r.created_at_ms,
                m.display_name,
                m.platform,
                m.version,
                m.device_family,
                m.model_identifier,
                m.client_id,
                m.client_mode,
                m.remote_ip,
            ])?;
        Ok(())
    }

    pub fn delete_request(&mut self, request_id: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM node_pairing_requests WHERE request_id = ?1")?
            .execute([request_id])?
            > 0)
    }

    /// Removes every pending request of `node_id`; returns how many.
    pub fn delete_requests_for_node(&mut self, node_id: &str) -> Result<usize> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM node_pairing_requests WHERE node_id = ?1")?
            .execute([node_id])?)
    }
}

type AnyBox = Box<dyn Any + Send>;
pub(crate) type NodesFn = Box<dyn FnOnce(&mut NodesTx<'_>) -> Result<AnyBox> + Send>;

/// Runs a nodes closure on the writer's connection (called by the writer thread).
pub(crate) fn run_nodes(conn: &Connection, f: NodesFn) -> Result<AnyBox> {
    let mut tx = NodesTx { conn };
    f(&mut tx)
}

impl Store {
    /// Atomic read-modify-write of the node tables on the writer thread. Resolves after
    /// `COMMIT`; an `Err` from `f` rolls its writes back. `f` must be quick.
    pub async fn nodes_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut NodesTx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let boxed: NodesFn = Box::new(move |tx| f(tx).map(|v| Box::new(v) as AnyBox));
        let out = self.submit(|ack| Op::Nodes { f: boxed, ack }).await?;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::Rejected("nodes_write: result type mismatch".into()))
    }

    /// Every approved node surface, most recently approved first.
    pub async fn list_node_surfaces(&self) -> Result<Vec<NodeSurface>> {
        self.read(|c| surfaces(c, None)).await
    }

    /// The approved surface of one node.
    pub async fn get_node_surface(&self, node_id: &str) -> Result<Option<NodeSurface>> {
        let id = node_id.to_string();
        self.read(move |c| Ok(surfaces(c, Some(&id))?.into_iter().next()))
            .await
    }

    /// Every pending surface request, newest first.
    pub async fn list_node_pairing_requests(&self) -> Result<Vec<NodePairingRequest>> {
        self.read(|c| requests(c, None)).await
    }

    /// One pending surface request by id.
    pub async fn get_node_pairing_request(
        &self,
        request_id: &str,
    ) -> Result<Option<NodePairingRequest>> {
        let id = request_id.to_string();
        self.read(move |c| request_by_id(c, &id)).await
    }
}
