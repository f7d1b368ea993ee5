package config

// The engines of archive_state.engine.
const (
	StateEngineBadger = "badger"
	StateEngineMySQL  = "mysql"
)

// ArchiveState chooses where each device's chain state (archive/state)
// is kept.
type ArchiveState struct {
	// Engine is badger (a Badger store under data_dir/state, the
	// default) or mysql (tables in a MySQL or MariaDB database).
	Engine string `yaml:"engine"`
	// MySQLDSNFile holds the database's DSN for mysql, one line, 0600
	// (it carries the password): "user:password@unix(/run/mysqld/mysqld.sock)/edgeseal_state".
	MySQLDSNFile string `yaml:"mysql_dsn_file"`
}

func (s *ArchiveState) defaults() {
	if s.Engine == "" {
		s.Engine = StateEngineBadger
	}
}

func (s *ArchiveState) validate(bad func(key, f string, args ...any)) {
	validateEngine(bad, "archive_state", s.Engine, s.MySQLDSNFile, "badger or mysql", StateEngineBadger)
}
