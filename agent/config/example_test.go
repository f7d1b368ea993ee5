package config_test

import (
	"fmt"

	"github.com/edgeseal/edgeseal/agent/config"
)

func ExamplePrincipals_Authenticate() {
	cfg, err := config.Parse([]byte(`
site: plant-berlin
device: line3-gw
policy: /etc/edgeseal/policy.yaml
principals:
  - name: n8n-prod
    token_sha256: ` + config.HashToken("correct horse battery staple") + `
    roles: [exporter]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	p, ok := cfg.Principals.Authenticate("correct horse battery staple")
	fmt.Println(p.Name, ok, p.Has(config.RoleExporter), p.Has(config.RoleOperator))
	_, ok = cfg.Principals.Authenticate("wrong")
	fmt.Println(ok)

	_, err = config.Parse([]byte("site: a\ndevice: b\npolicy: p\nseal:\n  interval: 1ms\n"))
	fmt.Println(err)
	// Output:
	// n8n-prod true true false
	// false
	// config: line 5: seal.interval: must be at least 100ms, got 1ms
}
