package config

import "time"

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
	// HoldWait and GapWait bound how long a bundle waits for its
	// device's lease, and after a gap for its predecessor to be
	// committed by another replica, before it is answered held (with a
	// shared store, mysql, only; lanes.go).
	HoldWait time.Duration `yaml:"hold_wait"`
	GapWait  time.Duration `yaml:"gap_wait"`
}

func (s *ArchiveState) defaults() {
	if s.Engine == "" {
		s.Engine = StateEngineBadger
	}
}

func (s *ArchiveState) validate(bad func(key, f string, args ...any)) {
	validateEngine(bad, "archive_state", s.Engine, s.MySQLDSNFile, "badger or mysql", StateEngineBadger)
	s.validateWaits(bad)
}
