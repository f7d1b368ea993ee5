package config

// The engines of archive_index.engine.
const (
	IndexEngineBadger = "badger"
	IndexEngineMySQL  = "mysql"
)

// ArchiveIndex chooses where the export index (what auditors search) and
// the access log's keys are kept.
type ArchiveIndex struct {
	// Engine is badger (a Badger index under data_dir/search, the
	// default) or mysql (a table in a MySQL or MariaDB database).
	Engine string `yaml:"engine"`
	// MySQLDSNFile holds the database's DSN for mysql, one line, 0600
	// (it carries the password): "user:password@unix(/run/mysqld/mysqld.sock)/edgeseal_index".
	MySQLDSNFile string `yaml:"mysql_dsn_file"`
}

func (x *ArchiveIndex) defaults() {
	if x.Engine == "" {
		x.Engine = IndexEngineBadger
	}
}

func (x *ArchiveIndex) validate(bad func(key, f string, args ...any)) {
	validateEngine(bad, "archive_index", x.Engine, x.MySQLDSNFile, "badger or mysql", IndexEngineBadger)
}
