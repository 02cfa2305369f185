import sys, glob, os, torch, statistics as st
def load(d):
    out={}
    for f in glob.glob(d+'/*/model.pt'):
        b=torch.load(f, map_location='cpu', weights_only=True); m=b['metrics']
        h=[r for r in b['history'] if 'valid_accuracy' in r][-1]
        out[(m['policy'],m['tau'],m['seed'])]=(100*(1-h['valid_accuracy']), 100*m['test_error'])
    return out
runs=[load(d) for d in sys.argv[1:]]
keys=sorted(runs[0])
print("valid err / test err:", " | ".join(os.path.basename(d) for d in sys.argv[1:]))
for k in keys:
    print(f"{k[0]:17s}{k[1]:<5g}s{k[2]}", " | ".join(f"{r[k][0]:5.2f} {r[k][1]:5.2f}" if k in r else "   -    -  " for r in runs))
common=[k for k in keys if all(k in r for r in runs)]
for pol in sorted({k[0] for k in common}):
    print(pol, " | ".join(f"{st.mean(r[k][0] for k in common if k[0]==pol):5.2f} {st.mean(r[k][1] for k in common if k[0]==pol):5.2f}" for r in runs))
print("all", " | ".join(f"{st.mean(r[k][0] for k in common):5.2f} {st.mean(r[k][1] for k in common):5.2f}" for r in runs))
