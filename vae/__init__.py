"""reparam-lab's library: data, model, ELBO, training job, checkpoints and figures. No Streamlit here."""
