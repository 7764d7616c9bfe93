def summarize(inputs, outputs):
    return {"rows": len(inputs)

def other():
    pass
