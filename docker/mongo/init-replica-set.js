// Initiate the 3-member replica set `rs0` and create the least-privileged backup user.
// Runs once (the mongo-init job); safe to re-run.
try {
  rs.status();
} catch (e) {
  rs.initiate({
    _id: "rs0",
    members: [
      { _id: 0, host: "mongo1:27017", priority: 2 },
      { _id: 1, host: "mongo2:27017", priority: 1 },
      { _id: 2, host: "mongo3:27017", priority: 1 },
    ],
  });
}
while (!db.hello().isWritablePrimary) { sleep(500); }
const admin = db.getSiblingDB("admin");
if (!admin.getUser("backup")) {
  // backup: read everything incl. local.oplog.rs; restore: the DR restore path;
  // clusterMonitor: hello/replSetGetStatus for health checks.
  admin.createUser({
    user: "backup",
    pwd: "backup-secret",
    roles: ["backup", "restore", "clusterMonitor", { role: "readWrite", db: "korea_public_data" }],
  });
}
print("replica set rs0 ready; backup user present");
