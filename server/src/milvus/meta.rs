//! Metadata calls: databases, collections, partitions, indexes, aliases, load state.
//! Each takes and returns domain types; "already exists" and "not found" come back as
//! [`Created`] and `Option`, decided once in `status.rs`.

use milvault_proto::milvault::v1 as mv;
use milvault_proto::milvus::common::{self, LoadState};
use milvault_proto::milvus::milvus as pb;
use prost::Message;

use super::client::MilvusClient;
use super::convert;
use super::schema_rules;
use super::status;
use super::types::{CollectionInfo, Created, NewCollection};
use crate::error::Result;
use crate::selection::DEFAULT_DB;

impl MilvusClient {
    /// Database names (just `default` on servers without databases).
    pub(crate) async fn list_databases(&self) -> Result<Vec<String>> {
        if !self.features().supports_databases() {
            return Ok(vec![DEFAULT_DB.to_owned()]);
        }
        let r = self
            .call(
                "ListDatabases",
                "",
                pb::ListDatabasesRequest::default(),
                |c, r| Box::pin(c.list_databases(r)),
            )
            .await?;
        Ok(r.db_names)
    }

    /// Creates a database; an existing one is fine.
    pub(crate) async fn create_database(&self, db: &str) -> Result<Created> {
        let req = pb::CreateDatabaseRequest {
            db_name: db.to_owned(),
            ..Default::default()
        };
        status::created(
            self.call("CreateDatabase", "", req, |c, r| {
                Box::pin(c.create_database(r))
            })
            .await,
        )
    }

    /// Collection names of one database.
    pub(crate) async fn show_collections(&self, db: &str) -> Result<Vec<String>> {
        let req = pb::ShowCollectionsRequest {
            db_name: db.to_owned(),
            ..Default::default()
        };
        let r = self
            .call("ShowCollections", db, req, |c, r| {
                Box::pin(c.show_collections(r))
            })
            .await?;
        Ok(r.collection_names)
    }

    /// Whether a collection exists.
    pub(crate) async fn has_collection(&self, db: &str, name: &str) -> Result<bool> {
        let req = pb::HasCollectionRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        Ok(self
            .call("HasCollection", db, req, |c, r| {
                Box::pin(c.has_collection(r))
            })
            .await?
            .value)
    }

    /// A collection's description, in manifest terms.
    pub(crate) async fn describe_collection(&self, db: &str, name: &str) -> Result<CollectionInfo> {
        let req = pb::DescribeCollectionRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        let d = self
            .call("DescribeCollection", db, req, |c, r| {
                Box::pin(c.describe_collection(r))
            })
            .await?;
        let raw = d.schema.clone().unwrap_or_default();
        Ok(CollectionInfo {
            id: d.collection_id,
            schema: convert::schema_from(&raw),
            raw_schema: raw.encode_to_vec(),
            shards_num: d.shards_num,
            consistency_level: convert::consistency_from(d.consistency_level),
            properties: convert::kvs_from(&d.properties),
            aliases: d.aliases,
            num_partitions: d.num_partitions,
            created_timestamp: d.created_timestamp,
        })
    }

    /// Creates a collection with the schema's field ids.
    pub(crate) async fn create_collection(&self, c: &NewCollection<'_>) -> Result<()> {
        let req = pb::CreateCollectionRequest {
            db_name: c.database.to_owned(),
            collection_name: c.name.to_owned(),
            schema: match schema_rules::decode(c.raw_schema) {
                Some(raw) => schema_rules::for_create(raw, c.name),
                None => convert::schema_to(c.schema, c.name),
            }
            .encode_to_vec(),
            shards_num: c.shards_num,
            consistency_level: convert::consistency_to(c.consistency_level),
            properties: convert::kvs_to(c.properties),
            num_partitions: c.num_partitions,
            ..Default::default()
        };
        self.call("CreateCollection", c.database, req, |cl, r| {
            Box::pin(cl.create_collection(r))
        })
        .await
        .map(|_| ())
    }

    /// Drops a collection.
    pub(crate) async fn drop_collection(&self, db: &str, name: &str) -> Result<()> {
        let req = pb::DropCollectionRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        self.call("DropCollection", db, req, |c, r| {
            Box::pin(c.drop_collection(r))
        })
        .await
        .map(|_| ())
    }

    /// Renames a collection within its database (2.2.9+).
    pub(crate) async fn rename_collection(&self, db: &str, from: &str, to: &str) -> Result<()> {
        let req = pb::RenameCollectionRequest {
            db_name: db.to_owned(),
            old_name: from.to_owned(),
            new_name: to.to_owned(),
            ..Default::default()
        };
        self.call("RenameCollection", db, req, |c, r| {
            Box::pin(c.rename_collection(r))
        })
        .await
        .map(|_| ())
    }

    /// Partitions as names and ids.
    pub(crate) async fn show_partitions(
        &self,
        db: &str,
        name: &str,
    ) -> Result<Vec<mv::PartitionBackup>> {
        let req = pb::ShowPartitionsRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        let r = self
            .call("ShowPartitions", db, req, |c, r| {
                Box::pin(c.show_partitions(r))
            })
            .await?;
        Ok(r.partition_names
            .into_iter()
            .zip(r.partition_i_ds)
            .map(|(name, partition_id)| mv::PartitionBackup {
                name,
                partition_id,
                live_rows: 0,
            })
            .collect())
    }

    /// Creates a partition.
    pub(crate) async fn create_partition(
        &self,
        db: &str,
        coll: &str,
        partition: &str,
    ) -> Result<()> {
        let req = pb::CreatePartitionRequest {
            db_name: db.to_owned(),
            collection_name: coll.to_owned(),
            partition_name: partition.to_owned(),
            ..Default::default()
        };
        self.call("CreatePartition", db, req, |c, r| {
            Box::pin(c.create_partition(r))
        })
        .await
        .map(|_| ())
    }

    /// Index definitions (none when the collection has no index).
    pub(crate) async fn describe_indexes(
        &self,
        db: &str,
        name: &str,
    ) -> Result<Vec<mv::IndexBackup>> {
        let req = pb::DescribeIndexRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        let resp = self
            .call("DescribeIndex", db, req, |c, r| {
                Box::pin(c.describe_index(r))
            })
            .await;
        let Some(resp) = status::found(resp)? else {
            return Ok(Vec::new());
        };
        Ok(resp
            .index_descriptions
            .into_iter()
            .map(|i| mv::IndexBackup {
                index_name: i.index_name,
                field_name: i.field_name,
                params: convert::kvs_from(&i.params),
                index_id: i.index_id,
            })
            .collect())
    }

    /// Creates an index from its backed-up definition.
    pub(crate) async fn create_index(
        &self,
        db: &str,
        coll: &str,
        idx: &mv::IndexBackup,
    ) -> Result<()> {
        let req = pb::CreateIndexRequest {
            db_name: db.to_owned(),
            collection_name: coll.to_owned(),
            field_name: idx.field_name.clone(),
            extra_params: convert::kvs_to(&idx.params),
            index_name: idx.index_name.clone(),
            ..Default::default()
        };
        self.call("CreateIndex", db, req, |c, r| Box::pin(c.create_index(r)))
            .await
            .map(|_| ())
    }

    /// Aliases of a collection (from `DescribeCollection` on 2.2, which has no
    /// `ListAliases`).
    pub(crate) async fn list_aliases(&self, db: &str, name: &str) -> Result<Vec<String>> {
        if !self.features().supports_list_aliases() {
            return Ok(self.describe_collection(db, name).await?.aliases);
        }
        let req = pb::ListAliasesRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        Ok(self
            .call("ListAliases", db, req, |c, r| Box::pin(c.list_aliases(r)))
            .await?
            .aliases)
    }

    /// The collection an alias points at, `None` when the alias does not exist (2.3+).
    pub(crate) async fn describe_alias(&self, db: &str, alias: &str) -> Result<Option<String>> {
        let req = pb::DescribeAliasRequest {
            db_name: db.to_owned(),
            alias: alias.to_owned(),
            ..Default::default()
        };
        let r = self
            .call("DescribeAlias", db, req, |c, r| {
                Box::pin(c.describe_alias(r))
            })
            .await;
        Ok(status::found(r)?.map(|r| r.collection))
    }

    /// Creates an alias; `Existed` when the alias is already taken (by any collection).
    pub(crate) async fn create_alias(&self, db: &str, coll: &str, alias: &str) -> Result<Created> {
        let req = pb::CreateAliasRequest {
            db_name: db.to_owned(),
            collection_name: coll.to_owned(),
            alias: alias.to_owned(),
            ..Default::default()
        };
        status::created(
            self.call("CreateAlias", db, req, |c, r| Box::pin(c.create_alias(r)))
                .await,
        )
    }

    /// Points an existing alias at another collection.
    pub(crate) async fn alter_alias(&self, db: &str, coll: &str, alias: &str) -> Result<()> {
        let req = pb::AlterAliasRequest {
            db_name: db.to_owned(),
            collection_name: coll.to_owned(),
            alias: alias.to_owned(),
            ..Default::default()
        };
        self.call("AlterAlias", db, req, |c, r| Box::pin(c.alter_alias(r)))
            .await
            .map(|_| ())
    }

    /// Drops an alias.
    pub(crate) async fn drop_alias(&self, db: &str, alias: &str) -> Result<()> {
        let req = pb::DropAliasRequest {
            db_name: db.to_owned(),
            alias: alias.to_owned(),
            ..Default::default()
        };
        self.call("DropAlias", db, req, |c, r| Box::pin(c.drop_alias(r)))
            .await
            .map(|_| ())
    }

    /// Whether the collection is loaded (or loading).
    pub(crate) async fn is_loaded(&self, db: &str, name: &str) -> Result<bool> {
        let state = self.load_state(db, name).await?;
        Ok(matches!(state, LoadState::Loaded | LoadState::Loading))
    }

    /// Waits while Milvus reports the collection `Loading` (a loaded collection is,
    /// for up to a minute after Milvus restarted, and `count(*)` then fails with
    /// "collection not loaded"); returns at once in any other state.
    pub(crate) async fn wait_while_loading(
        &self,
        db: &str,
        name: &str,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<()> {
        let what = format!("{db}.{name} to finish loading");
        crate::poll::until(&what, &self.timeouts.settle(), cancel, || async {
            Ok(match self.load_state(db, name).await? {
                LoadState::Loading => None,
                _ => Some(()),
            })
        })
        .await
    }

    async fn load_state(&self, db: &str, name: &str) -> Result<LoadState> {
        let req = pb::GetLoadStateRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        let r = self
            .call("GetLoadState", db, req, |c, r| {
                Box::pin(c.get_load_state(r))
            })
            .await?;
        Ok(common::LoadState::try_from(r.state).unwrap_or(LoadState::NotExist))
    }

    /// Asks Milvus to load a collection; returns once the request was accepted.
    pub(crate) async fn load(&self, db: &str, coll: &str) -> Result<()> {
        let req = pb::LoadCollectionRequest {
            db_name: db.to_owned(),
            collection_name: coll.to_owned(),
            ..Default::default()
        };
        self.call("LoadCollection", db, req, |c, r| {
            Box::pin(c.load_collection(r))
        })
        .await
        .map(|_| ())
    }
}
