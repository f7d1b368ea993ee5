package bundle_test
import ("testing";"github.com/edgeseal/edgeseal/bundle")
func BenchmarkZZParse(b *testing.B){
 c, _ := benchBundle(b)
 bd:=c.Bundles[0]
 data:=bd.Files[bundle.PathRecords]
 recs,_:=bd.Records()
 s:=string(data)
 b.Run("parse", func(b *testing.B){ b.SetBytes(int64(len(data))); st:=cpuTime(); for b.Loop(){ if err:=bundle.ZZParseAll(recs,s); err!=nil {b.Fatal(err)} }; reportCPU(b,st,len(data)) })
 b.Run("canon", func(b *testing.B){ b.SetBytes(int64(len(data))); st:=cpuTime(); for b.Loop(){ if err:=bundle.ZZCanonAll(recs); err!=nil {b.Fatal(err)} }; reportCPU(b,st,len(data)) })
}
