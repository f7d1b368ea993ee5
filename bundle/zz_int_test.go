package bundle
func ZZParseAll(recs [][]byte, s string) error { var d recDecoder; out:=make([]Record,len(recs)); pos:=0; for i,r:=range recs { if err:=d.parse(r, s[pos:pos+len(r)], &out[i]); err!=nil {return err}; pos+=len(r)+1 }; return nil }
func ZZCanonAll(recs [][]byte) error { var d recDecoder; for _,r:=range recs { if _,_,_,err:=checkCanonicalRecord(r, d.top[:0], d.body[:0]); err!=nil {return err} }; return nil }
